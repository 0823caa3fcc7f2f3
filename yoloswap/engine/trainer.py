"""The training loop: data → augment → loss → optimizer/EMA/AMP → evaluate → checkpoint, one epoch at a time.

Read top to bottom: ``train`` sets up a :class:`Run` (model, data, optimizer, schedule, run folder), then loops
``train_one_epoch`` / ``evaluate`` / ``save``. Every checkpoint is self-describing and written atomically, so a run
killed at any moment resumes from its last completed epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from yoloswap import __version__
from yoloswap.engine import distributed
from yoloswap.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from yoloswap.engine.ema import ModelEMA, unwrap
from yoloswap.engine.model_io import CHECKPOINT_FORMAT, is_detector_checkpoint
from yoloswap.engine.options import TrainOptions
from yoloswap.engine.schedule import Schedule
from yoloswap.engine.validate import autocast_for, evaluate
from yoloswap.errors import CheckpointError, TrainingError

def metric_columns(loss_names) -> tuple[str, ...]:
    """metrics.csv columns: the head's loss items (``train/<name>_loss``, ``val/<name>_loss``), then the rest."""
    return ("epoch", *(f"train/{n}_loss" for n in loss_names), *(f"val/{n}_loss" for n in loss_names),
            "metrics/mAP50", "metrics/mAP50-95", "lr/backbone", "lr/other", "time/epoch_s", "train/img_per_s")


METRIC_COLUMNS = metric_columns(("box", "obj", "cls"))  # the yolov5 head's


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


def fitness(metrics: dict) -> float:
    """YOLOv5's model-selection score: mostly mAP@.5:.95, a little mAP@.5."""
    return 0.1 * metrics.get("map50", 0.0) + 0.9 * metrics.get("map", 0.0)


# ------------------------------------------------------------------------------------------------ run folder


def new_run_dir(base: Path = Path("runs/train"), name: str = "exp") -> Path:
    """``runs/train/exp``, ``exp2``, ``exp3``…: the first that does not exist yet."""
    for i in range(1, 10_000):
        candidate = base / (name if i == 1 else f"{name}{i}")
        if not candidate.exists():
            return candidate
    raise TrainingError(f"{base}: too many runs; pass --out")


def claim_run_dir(out: Path, exist_ok: bool) -> Path:
    """Create the run folder; an existing run is never overwritten unless asked."""
    if out.exists() and any(out.iterdir()) and not exist_ok:
        raise TrainingError(
            f"run folder {out} already exists; continue it with --resume {out}, "
            "pick another --out, or pass --exist-ok to overwrite it"
        )
    (out / "weights").mkdir(parents=True, exist_ok=True)
    return out


# ------------------------------------------------------------------------------------------------ set-up


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it (no scaler needed), else fp16; CPU trains in fp32."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def build_run(options: TrainOptions, out: Path, log=print, resume_ckpt: dict | None = None,
              dist: distributed.Dist = distributed.Dist()) -> tuple[Run, Any]:
    """Model, data, optimizer and schedule for ``options``; restored from ``resume_ckpt`` when given."""
    from yoloswap.backbones.freeze import apply_freezing
    from yoloswap.data.dataset import DetectionDataset, build_dataloader
    from yoloswap.data.formats import load_data_config
    from yoloswap.data.synthetic import builtin_data_yaml
    from yoloswap.engine.optim import build_optimizer
    from yoloswap.models.assemble import DetectorPlan, build_detector, detector_from_plan
    from yoloswap.presets import preset_from_dict, resolve_backbone
    from yoloswap.probe import resolve_device

    options.check()
    seed_everything(options.seed)
    device = resolve_device(options.device)
    if device.type == "meta":
        raise TrainingError("--device meta cannot train; use cpu or cuda")
    device = distributed.setup(dist, device)

    # --- data: read and validated before any model work, so label errors stop the run at once
    data_yaml = Path(options.data) if options.data else builtin_data_yaml()
    if not options.data:
        log(f"data: built-in synthetic set at {data_yaml.parent}")
    data = load_data_config(data_yaml)
    train_split, val_split = data.train, data.val
    for split in (train_split, val_split):
        if split.skipped:
            log(f"[yellow]warning:[/] {split.name}: skipped {len(split.skipped)} unreadable image(s), e.g. {split.skipped[0]}")
    names = list(data.names)
    category_ids = list(data.category_ids) if data.category_ids else None
    train_ds = DetectionDataset(train_split.samples, options.img_size, augment=True, aug=options.augment,
                                seed=options.seed)
    val_ds = DetectionDataset(val_split.samples, options.img_size, augment=False)
    sampler = None
    if dist.enabled:  # each rank sees its own shard; --batch-size is the total over all ranks
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_ds, dist.world_size, dist.rank, shuffle=True, seed=options.seed)
    per_rank_batch = max(options.batch_size // dist.world_size, 1)
    train_loader = build_dataloader(train_ds, per_rank_batch, True, options.workers, options.seed + dist.rank,
                                    sampler=sampler)
    val_loader = build_dataloader(val_ds, options.batch_size, False, min(options.workers, 2), options.seed)

    # --- model: preset (+ overrides) → probe → neck/head fitted → weights → freezing
    weights_report = None
    if resume_ckpt is not None:  # the checkpoint's own preset and plan; its weights are restored below
        preset = preset_from_dict(resume_ckpt["config"]["preset"], origin="checkpoint preset")
        plan = DetectorPlan.from_dict(resume_ckpt["plan"])
        model = detector_from_plan(_build_backbone(preset), plan, preset)
    else:
        init_ckpt = _detector_checkpoint(options.weights)  # read once: decides how --weights is used
        preset = _with_overrides(resolve_backbone(options.backbone), options, init_ckpt is not None)
        model, plan = build_detector(preset, len(names), (options.img_size, options.img_size), options.neck_width)
        if not dist.main:
            distributed.barrier(dist)  # rank 0 downloads into the cache first; the others then read it
        weights_report = _load_initial_weights(model, preset, options, init_ckpt, log)
        if dist.main:
            distributed.barrier(dist)
        if options.autoanchor:  # deterministic (seeded), so every rank installs the same anchors
            from yoloswap.engine.autoanchor import check_anchors

            plan = check_anchors(model.head, plan, train_split.samples, options.img_size, log, options.seed)
    apply_freezing(model.backbone, preset.frozen_stages, preset.norm_eval)
    model.to(device, memory_format=torch.channels_last)  # faster convolutions on both CPU and GPU

    # --- optimisation: nominal batch by accumulation, weight decay scaled to match
    accumulate = max(round(options.nominal_batch / options.batch_size), 1)
    opt_name = options.optimizer or preset.optimizer.name
    lr = options.lr or preset.optimizer.lr
    wd = options.weight_decay if options.weight_decay is not None else preset.optimizer.weight_decay
    wd *= options.batch_size * accumulate / options.nominal_batch
    optimizer = build_optimizer(
        model, opt_name, lr, preset.optimizer.momentum, wd, backbone_lr_mult=options.backbone_lr_mult
    )
    amp_dtype = amp_dtype_for(device, options.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    schedule = Schedule(
        epochs=options.epochs,
        iters_per_epoch=len(train_loader),
        lrf=options.lrf,
        cosine=options.cos_lr,
        warmup_epochs=options.warmup_epochs,
        warmup_bias_lr=0.1 if opt_name == "sgd" else 0.0,
        momentum=preset.optimizer.momentum,
    )
    ema = ModelEMA(model) if options.ema and dist.main else None
    run = Run(
        options=options, out=out, preset=preset, plan=plan, names=names, category_ids=category_ids,
        model=distributed.wrap(dist, model, device), ema=ema, optimizer=optimizer, scaler=scaler,
        schedule=schedule, device=device, amp_dtype=amp_dtype, accumulate=accumulate, dist=dist,
        weights_report=weights_report.to_dict() if weights_report is not None else None,
    )
    if resume_ckpt is not None:
        _restore(run, resume_ckpt)
    return run, (train_loader, val_loader)


def _build_backbone(preset):
    from yoloswap.backbones.build import build_backbone

    return build_backbone(preset)


def _with_overrides(preset, options: TrainOptions, fine_tune: bool):
    """CLI options override the preset's training controls; the result is what the run records."""
    changes = {}
    for name in ("frozen_stages", "norm_eval", "drop_path_rate", "head"):
        value = getattr(options, name)
        if value is not None:
            changes[name] = value
    if options.weights is not None and not fine_tune:
        changes["weights"] = options.weights
    return dataclasses.replace(preset, **changes) if changes else preset


def _detector_checkpoint(weights: str | None) -> dict | None:
    """``--weights`` as a yoloswap detector checkpoint (to fine-tune), or None when it is backbone weights.

    A file that cannot be read is left to the backbone loader, whose error names what is wrong with it.
    """
    if weights is None or not Path(weights).is_file() or Path(weights).suffix != ".pt":
        return None
    try:
        ckpt = load_checkpoint(Path(weights))
    except CheckpointError:
        return None
    return ckpt if is_detector_checkpoint(ckpt) else None


def _load_initial_weights(model, preset, options: TrainOptions, init_ckpt: dict | None, log):
    """A yoloswap checkpoint fine-tunes the whole detector; anything else is backbone weights."""
    from yoloswap.backbones.weights import load_backbone_weights

    if init_ckpt is not None:
        state = init_ckpt.get("ema") or init_ckpt["model"]
        own = model.state_dict()
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(fitting, strict=False)
        log(f"weights: {len(fitting)}/{len(own)} detector tensors from {options.weights}")
        return None
    report = load_backbone_weights(model.backbone, preset.weights, preset, min_fraction=options.min_weights_fraction)
    if report is None:
        log("weights: none (training the backbone from scratch)")
    else:
        log(f"weights: {report.summary_line()}")
    return report


# ------------------------------------------------------------------------------------------------ the loop


def train(options: TrainOptions, out: Path | None = None, exist_ok: bool = False, resume: Path | None = None,
          console=None) -> dict:
    """Run (or resume) training; returns the final metrics. ``console`` is a rich Console for progress/logs."""
    from rich.console import Console

    console = console or Console(stderr=True)
    dist = distributed.from_env()
    log = console.print if dist.main else (lambda *a, **k: None)
    try:
        return _train(options, out, exist_ok, resume, console, log, dist)
    finally:
        distributed.cleanup(dist)


def _train(options: TrainOptions, out: Path | None, exist_ok: bool, resume: Path | None, console, log,
           dist: distributed.Dist) -> dict:
    from yoloswap.probe import resolve_device

    distributed.setup(dist, resolve_device(options.device))  # join the group before ranks exchange anything
    resume_ckpt = None
    if resume is not None:
        resume, resume_ckpt = _resume_checkpoint(Path(resume))
        saved = TrainOptions.from_dict(resume_ckpt["config"]["options"])
        options = dataclasses.replace(saved, device=options.device, workers=options.workers)
        out = resume
        if int(resume_ckpt["epoch"]) + 1 >= options.epochs:
            raise TrainingError(f"{resume} already finished all {options.epochs} epochs; nothing to resume")
        log(f"resuming {out} from epoch {int(resume_ckpt['epoch']) + 2}/{options.epochs}")
    elif dist.main:
        out = claim_run_dir(out or new_run_dir(), exist_ok)
    out = distributed.broadcast(dist, out)
    run, (train_loader, val_loader) = build_run(options, out, log, resume_ckpt, dist)
    if dist.main:
        _write_config(run)
    _log_setup(run, log, len(train_loader.dataset), len(val_loader.dataset))

    loss_fn = unwrap(run.model).head.make_loss(options.img_size)
    columns = metric_columns(loss_fn.names)
    epochs = options.epochs
    budget_start = time.perf_counter()
    epoch = run.start_epoch
    while epoch < epochs:
        train_loader.dataset.mosaic_enabled = epoch < epochs - options.close_mosaic
        if dist.enabled:
            train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        losses, img_per_s = train_one_epoch(run, train_loader, loss_fn, epoch, console)
        row = {"epoch": epoch + 1, "train/img_per_s": img_per_s}
        row.update({f"train/{n}_loss": v for n, v in zip(loss_fn.names, losses)})
        row.update(_lr_columns(run.optimizer))
        final = epoch == epochs - 1
        if not dist.main:
            improved = False
        elif (epoch + 1) % options.val_interval == 0 or final:
            metrics = _validate(run, val_loader, loss_fn, console, epoch)
            row.update({f"val/{n}_loss": metrics.get(f"val_{n}_loss") for n in loss_fn.names})
            row.update({"metrics/mAP50": metrics["map50"], "metrics/mAP50-95": metrics["map"]})
            run.last_metrics = metrics
            improved = fitness(metrics) > run.best_fitness
            if improved:
                run.best_fitness = fitness(metrics)
        else:
            improved = False
        row["time/epoch_s"] = time.perf_counter() - start
        if dist.main:
            _append_metrics(out / "metrics.csv", row, columns)
            _save(run, epoch, best=improved)
        if dist.main and run.last_metrics:
            log(f"epoch {epoch + 1}/{epochs}: mAP@.5:.95 {run.last_metrics['map']:.4f}  mAP@.5 "
                f"{run.last_metrics['map50']:.4f}  loss {sum(losses):.4f}  {img_per_s:.1f} img/s")
        if dist.main:
            _plot(out, log)
        epoch += 1
        if options.time is not None and epoch < epochs:
            fitted = distributed.broadcast(dist, fit_epochs_to_time(
                options.time * 60, time.perf_counter() - budget_start, epoch - run.start_epoch, epoch, epochs))
            if fitted != epochs:
                log(f"--time {options.time:g} min: {fitted} epochs fit the budget (was {epochs})")
                epochs = fitted
                run.schedule = dataclasses.replace(run.schedule, epochs=epochs)
                run.options = options = dataclasses.replace(options, epochs=epochs)
    if dist.main:
        _summary(run, console)
    return run.last_metrics


def _plot(out: Path, log) -> None:
    try:
        from yoloswap.engine.plots import plot_results

        plot_results(out / "metrics.csv", out / "results.png")
    except Exception as exc:  # a plot must never end a run
        log(f"[yellow]warning:[/] could not draw results.png ({exc})")


def fit_epochs_to_time(budget_s: float, spent_s: float, epochs_done_here: int, epoch: int, epochs: int) -> int:
    """Total epochs that fit ``budget_s`` at the pace so far (never more than ``epochs``; ``epoch`` = stop now).

    The lr schedule is then refitted to the new total, so the decay still ends where training does.
    """
    per_epoch = spent_s / max(epochs_done_here, 1)
    remaining = int(max(budget_s - spent_s, 0.0) // max(per_epoch, 1e-9))
    return min(epochs, epoch + remaining)


def train_one_epoch(run: Run, loader, loss_fn, epoch: int, console) -> tuple[list[float], float]:
    """One pass over the training data; returns the mean loss items (``loss_fn.names``) and images per second."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    model, optimizer, device = run.model, run.optimizer, run.device
    model.train()
    nb = len(loader)
    mean = torch.zeros(len(loss_fn.names))
    seen, start = 0, time.perf_counter()
    last_step = epoch * nb - 1 if epoch else -1
    optimizer.zero_grad(set_to_none=True)
    columns = (TextColumn("[bold]epoch {task.fields[ep]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, disable=not run.dist.main) as progress:
        task = progress.add_task("train", total=nb, ep=f"{epoch + 1}/{run.options.epochs}", stats="")
        for i, (images, targets, _) in enumerate(loader):
            ni = i + nb * epoch
            run.schedule.apply(optimizer, ni, epoch)
            x = images.to(device, non_blocking=True).float() / 255  # (B, 3, S, S) in [0, 1]
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, run.amp_dtype):
                outputs = model(x)
            loss, items = loss_fn([o.float() for o in outputs], targets.to(device))
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}; stopping. The last good "
                    f"checkpoint is {run.out / 'weights' / 'last.pt'}. Try a lower --lr, --no-amp, or check the labels"
                )
            run.scaler.scale(loss * run.dist.world_size).backward()  # DDP averages gradients over ranks
            if ni - last_step >= run.accumulate or i == nb - 1:
                _optimizer_step(run)
                last_step = ni
            mean = (mean * i + items.cpu()) / (i + 1)
            seen += len(images)
            rate = seen / max(time.perf_counter() - start, 1e-9)
            mem = f"  mem {torch.cuda.memory_reserved(device) / 2**30:.1f}G" if device.type == "cuda" else ""
            progress.update(task, advance=1, stats=(
                " ".join(f"{n} {v:.3f}" for n, v in zip(loss_fn.names, mean.tolist()))
                + f"  lr {optimizer.param_groups[0]['lr']:.2e}"
                f"  {rate:.1f} img/s{mem}"))
    return mean.tolist(), seen / max(time.perf_counter() - start, 1e-9)


def _optimizer_step(run: Run) -> None:
    run.scaler.unscale_(run.optimizer)
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_norm=10.0)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.model)


def _validate(run: Run, loader, loss_fn, console, epoch: int) -> dict:
    """COCO metrics of the EMA model; refreshes ``val_predictions.png`` (a few images with predicted boxes)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    model = run.ema.module if run.ema is not None else unwrap(run.model)
    with Progress(TextColumn("[bold]  val"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("val", total=len(loader))
        result = evaluate(model, loader, run.names, run.category_ids, run.device, run.amp_dtype, loss_fn=loss_fn,
                          previews=8, on_batch=lambda: progress.advance(task))
    if result.previews:
        from yoloswap.engine.plots import save_prediction_grid

        save_prediction_grid(result.previews, run.names, run.out / "val_predictions.png")
    return result.metrics


# ------------------------------------------------------------------------------------------------ checkpoints


def _state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in unwrap(module).state_dict().items()}


def _save(run: Run, epoch: int, best: bool) -> None:
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "yoloswap_version": __version__,
        "epoch": epoch,
        "config": _config(run),
        "plan": run.plan.to_dict(),
        "names": list(run.names),
        "category_ids": run.category_ids,
        "model": _state(run.model),
        "ema": _state(run.ema.module) if run.ema is not None else None,
        "ema_updates": run.ema.updates if run.ema is not None else 0,
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "best_fitness": run.best_fitness,
        "metrics": {k: float(v) for k, v in run.last_metrics.items() if isinstance(v, (int, float))},
        "rng": rng_state(),
    }
    weights = run.out / "weights"
    save_checkpoint(ckpt, weights / "last.pt")
    if best:
        save_checkpoint(ckpt, weights / "best.pt")


def _restore(run: Run, ckpt: dict) -> None:
    unwrap(run.model).load_state_dict(ckpt["model"])
    if run.ema is not None and ckpt.get("ema") is not None:
        run.ema.module.load_state_dict(ckpt["ema"])
        run.ema.updates = int(ckpt.get("ema_updates", 0))
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    run.start_epoch = int(ckpt["epoch"]) + 1
    run.best_fitness = float(ckpt.get("best_fitness", -1.0))
    run.last_metrics = dict(ckpt.get("metrics") or {})
    if ckpt.get("rng"):
        set_rng_state(ckpt["rng"])


def _resume_checkpoint(path: Path) -> tuple[Path, dict]:
    """``--resume RUN_DIR`` (or its ``last.pt``): the run folder and its last checkpoint."""
    last = path if path.is_file() else path / "weights" / "last.pt"
    if not last.is_file():
        raise TrainingError(f"--resume {path}: no checkpoint at {last}")
    ckpt = load_checkpoint(last)
    if not is_detector_checkpoint(ckpt) or "optimizer" not in ckpt:
        raise CheckpointError(f"{last}: not a yoloswap training checkpoint, cannot resume from it")
    return last.parent.parent, ckpt


def _config(run: Run) -> dict:
    return {
        "options": run.options.to_dict(),
        "preset": run.preset.to_dict(),
        "plan": run.plan.to_dict(),
        "names": list(run.names),
        "weights_report": run.weights_report,
    }


def _write_config(run: Run) -> None:
    """The fully resolved config (preset + options + probed plan) as YAML, for people and for diffing runs."""
    path = run.out / "config.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(_config(run), sort_keys=False))
    tmp.replace(path)


def _append_metrics(path: Path, row: dict, columns: tuple[str, ...] = METRIC_COLUMNS) -> None:
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow({k: ("" if row.get(k) is None else _fmt(row[k])) for k in columns})


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _lr_columns(optimizer) -> dict:
    backbone = [g["lr"] for g in optimizer.param_groups if g.get("name", "").startswith("backbone")]
    other = [g["lr"] for g in optimizer.param_groups if not g.get("name", "").startswith("backbone")]
    return {"lr/backbone": backbone[0] if backbone else None, "lr/other": other[0] if other else None}


def _log_setup(run: Run, log, n_train: int, n_val: int) -> None:
    trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in run.model.parameters())
    o = run.options
    log(f"run folder: {run.out}")
    log(f"model: {run.preset.name}, backbone channels {list(run.plan.backbone_channels)} → neck "
        f"{list(run.plan.neck_channels)}, {len(run.names)} classes, {total:,} params ({trainable:,} trainable)")
    log(f"data: {n_train} train / {n_val} val images at {o.img_size}px; batch {o.batch_size} × accumulate "
        f"{run.accumulate}; {o.optimizer or run.preset.optimizer.name} lr {o.lr or run.preset.optimizer.lr}; "
        f"device {run.device}{' ' + str(run.amp_dtype).replace('torch.', '') if run.amp_dtype else ''}")


def _summary(run: Run, console) -> None:
    from rich.table import Table

    table = Table(title=f"Finished: {run.out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label in (("map", "mAP@.5:.95"), ("map50", "mAP@.5"), ("map75", "mAP@.75")):
        if key in run.last_metrics:
            table.add_row(label, f"{run.last_metrics[key]:.4f}")
    table.add_row("best fitness", f"{max(run.best_fitness, 0):.4f}")
    table.add_row("weights", str(run.out / "weights" / "best.pt"))
    console.print(table)
