"""A run's state in one place: the :class:`Run` the loop trains, how it is saved (``last.pt``/``best.pt``, both
atomic and self-describing), restored, and how ``--resume`` (and ``--resume RUN --epochs N``) reads it back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from yoloswap import __version__
from yoloswap.assembly import CHECKPOINT_FORMAT, is_detector_checkpoint
from yoloswap.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from yoloswap.config.options import TrainOptions
from yoloswap.errors import CheckpointError, TrainingError, UsageError
from yoloswap.training import distributed
from yoloswap.training.ema import ModelEMA, unwrap
from yoloswap.training.precision import precision_name
from yoloswap.training.schedule import Schedule

DEFAULT_LOSS_NAMES = ("box", "obj", "cls")  # the yolov5 head's loss items (metrics.csv columns of old runs)


@dataclass
class Run:
    """The live state of one training run (what a checkpoint saves and ``--resume`` restores)."""

    options: TrainOptions
    out: Path
    preset: Any
    plan: Any
    names: list[str]
    category_ids: list[int] | None
    model: torch.nn.Module
    ema: ModelEMA | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Schedule
    device: torch.device
    amp_dtype: torch.dtype | None
    accumulate: int
    dist: distributed.Dist = distributed.Dist()
    start_epoch: int = 0
    best_fitness: float = -1.0
    last_metrics: dict = field(default_factory=dict)
    weights_report: dict | None = None
    optimizer_reason: str = ""
    max_epochs: int = 0  # --epochs as asked: a --time refit never goes past it
    loss_names: tuple[str, ...] = DEFAULT_LOSS_NAMES
    best_epoch: int = -1  # 0-based epoch of best.pt
    stopped_early: dict | None = None  # {epoch, best_epoch, patience} (1-based) once --patience ended the run


def fitness(metrics: dict) -> float:
    """YOLOv5's model-selection score: mostly mAP@.5:.95, a little mAP@.5."""
    return 0.1 * metrics.get("map50", 0.0) + 0.9 * metrics.get("map", 0.0)


def _state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in unwrap(module).state_dict().items()}


RESUME_KEYS = ("ema", "ema_updates", "optimizer", "scaler", "rng")  # what only --resume needs


def save_run(run: Run, epoch: int, best: bool) -> None:
    """last.pt after every epoch (everything ``--resume`` needs); best.pt too when ``best``, lean: the weights
    that val, predict, export and fine-tuning use (the EMA's, when there is one) and the run's description, without
    the optimizer state and the second copy of the weights. Both are written atomically."""
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "yoloswap_version": __version__,
        "epoch": epoch,
        "config": run_config(run),
        "plan": run.plan.to_dict(),
        "names": list(run.names),
        "category_ids": run.category_ids,
        "model": _state(run.model),
        "ema": _state(run.ema.module) if run.ema is not None else None,
        "ema_updates": run.ema.updates if run.ema is not None else 0,
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "best_fitness": run.best_fitness,
        "max_epochs": run.max_epochs,
        "best_epoch": run.best_epoch,
        "stopped_early": run.stopped_early,
        "metrics": {k: float(v) for k, v in run.last_metrics.items() if isinstance(v, (int, float))},
        "rng": rng_state(),
    }
    weights = run.out / "weights"
    if best:  # best.pt first, so a kill between the two saves cannot leave a run without its best.pt
        lean = {k: v for k, v in ckpt.items() if k not in RESUME_KEYS}
        lean["model"] = ckpt["ema"] if ckpt["ema"] is not None else ckpt["model"]
        save_checkpoint(lean, weights / "best.pt")
    save_checkpoint(ckpt, weights / "last.pt")  # last: it is the commit point a resume starts from


def restore(run: Run, ckpt: dict) -> None:
    unwrap(run.model).load_state_dict(ckpt["model"])
    if run.ema is not None and ckpt.get("ema") is not None:
        run.ema.module.load_state_dict(ckpt["ema"])
        run.ema.updates = int(ckpt.get("ema_updates", 0))
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    run.start_epoch = int(ckpt["epoch"]) + 1
    run.best_fitness = float(ckpt.get("best_fitness", -1.0))
    run.max_epochs = int(ckpt.get("max_epochs", run.max_epochs))
    run.best_epoch = int(ckpt.get("best_epoch", -1))
    run.optimizer_reason = ckpt["config"].get("optimizer_choice") or run.optimizer_reason  # why, as first decided
    run.last_metrics = dict(ckpt.get("metrics") or {})
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"])


def resume_checkpoint(path: Path) -> tuple[Path, dict]:
    """``--resume RUN_DIR`` (or its ``last.pt``): the run folder and its last checkpoint."""
    last = path if path.is_file() else path / "weights" / "last.pt"
    if not last.is_file():
        raise TrainingError(f"--resume {path}: no checkpoint at {last}")
    ckpt = load_checkpoint(last)
    if not is_detector_checkpoint(ckpt) or "optimizer" not in ckpt:
        raise CheckpointError(f"{last}: not a yoloswap training checkpoint, cannot resume from it")
    return last.parent.parent, ckpt


def run_config(run: Run) -> dict:
    return {
        "options": run.options.to_dict(),
        "preset": run.preset.to_dict(),
        "plan": run.plan.to_dict(),
        "names": list(run.names),
        "weights_report": run.weights_report,
        "optimizer_choice": run.optimizer_reason,
        "precision": precision_name(run.amp_dtype),
        "max_epochs": run.max_epochs,
        "stopped_early": run.stopped_early,  # null, or where --patience ended the run
    }


def write_config(run: Run) -> None:
    """The fully resolved config (preset + options + probed plan) as YAML, for people and for diffing runs."""
    path = run.out / "config.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(run_config(run), sort_keys=False, allow_unicode=True))
    tmp.replace(path)


def resumed_options(resume: Path, asked: TrainOptions, extend_to: int | None, log) -> tuple[Path, dict, TrainOptions]:
    """``--resume RUN`` (``--epochs N``: extended to N): the run folder, its last checkpoint and the options it
    continues with (its own, recorded; only the device and the workers follow the new command line)."""
    out, ckpt = resume_checkpoint(Path(resume))
    recorded = dict(ckpt["config"]["options"])
    if recorded.get("optimizer") is None:  # recorded before `auto`: it trained with the preset's optimizer
        recorded["optimizer"] = ckpt["config"]["preset"]["optimizer"]["name"]
    options = dataclasses.replace(TrainOptions.from_dict(recorded), device=asked.device, workers=asked.workers)
    done = int(ckpt["epoch"]) + 1
    stopped = ckpt.get("stopped_early")
    if stopped and extend_to is None:
        raise TrainingError(f"{out} already finished: --patience {stopped['patience']} stopped it at epoch "
                            f"{stopped['epoch']} (best epoch {stopped['best_epoch']}, in best.pt); extend it with "
                            f"--resume {out} --epochs N")
    if extend_to is not None:  # --resume RUN --epochs N: the same run, trained on to N epochs
        if extend_to <= done:
            raise UsageError(f"--epochs {extend_to}: {out} has already trained {done} epochs; give more to extend it")
        log(f"extending {out} from {options.epochs} to {extend_to} epochs (the lr schedule is refitted to "
            f"{extend_to}, so the lr rises onto the longer decay)")
        options = dataclasses.replace(options, epochs=extend_to, time=None)
        ckpt["max_epochs"] = extend_to
    if done >= options.epochs:
        raise TrainingError(f"{out} already finished all {options.epochs} epochs; extend it with "
                            f"--resume {out} --epochs N")
    log(f"resuming {out} from epoch {done + 1}/{options.epochs}")
    return out, ckpt, options
