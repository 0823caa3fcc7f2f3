"""The training loop: data → augment → loss → optimizer/EMA/AMP → evaluate → checkpoint, one epoch at a time.

Read top to bottom: ``train`` sets up a :class:`Run` (model, data, optimizer, schedule, run folder), then loops
``train_one_epoch`` / ``evaluate`` and hands each finished epoch to the callbacks (CSV row, checkpoint, log line,
plot: engine/callbacks.py). Every checkpoint is self-describing and written atomically, so a run killed at any
moment resumes from its last completed epoch.

The loop never waits for the device inside a step: loss items and the finiteness check stay on the device and are
read back a few times a second (:data:`READOUT_S`), which is also when the progress display is refreshed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from yoloswap import __version__
from yoloswap.engine import distributed, runlock, signals
from yoloswap.engine.callbacks import (
    EpochCallback, EpochEnd, Progress, default_callbacks, metric_columns, trim_metrics,
)
from yoloswap.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from yoloswap.engine.ema import ModelEMA, unwrap
from yoloswap.engine.model_io import CHECKPOINT_FORMAT, is_detector_checkpoint
from yoloswap.engine.options import TrainOptions, default_workers
from yoloswap.engine.precision import DTYPES, amp_dtype_for, cpu_precision, precision_name, seconds_per_step
from yoloswap.engine.schedule import Schedule
from yoloswap.engine.validate import autocast_for, evaluate
from yoloswap.errors import CheckpointError, TrainingError, UsageError

DEFAULT_LOSS_NAMES = ("box", "obj", "cls")  # the yolov5 head's loss items (metrics.csv columns of old runs)
METRIC_COLUMNS = metric_columns(DEFAULT_LOSS_NAMES)
READOUT_S = 0.25  # read the loss back from the device (one host sync) and refresh the progress this often
MOSAIC_MAX_CLOSED = 0.25  # --close-mosaic turns mosaic off for at most this fraction of the epochs
VAL_BATCH_MULT = 2  # validation needs no gradients: twice the training batch fits


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


def check_run_dir(out: Path, exist_ok: bool) -> Path:
    """Refuse an existing run folder (never overwritten unless asked); creates nothing."""
    if out.exists() and any(out.iterdir()) and not exist_ok:
        raise TrainingError(
            f"run folder {out} already exists; {_continue_hint(out)}"
            "pick another --out, or pass --exist-ok to overwrite it"
        )
    return out


def claim_run_dir(out: Path, exist_ok: bool) -> Path:
    """Create the run folder (after :func:`check_run_dir`'s refusal of an existing run)."""
    check_run_dir(out, exist_ok)
    (out / "weights").mkdir(parents=True, exist_ok=True)
    return out


def _continue_hint(out: Path) -> str:
    """Suggest ``--resume`` only where it would work: a run whose last checkpoint has epochs left."""
    try:
        ckpt = load_checkpoint(out / "weights" / "last.pt")
        if int(ckpt["epoch"]) + 1 < int(ckpt["config"]["options"]["epochs"]):
            return f"continue it with --resume {out}, "
        return f"it is a finished run (extend it with --resume {out} --epochs N); "
    except (CheckpointError, KeyError, TypeError, ValueError):  # not a run (or not one we can read)
        return ""


# ------------------------------------------------------------------------------------------------ set-up


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_run(options: TrainOptions, out: Path, log=print, resume_ckpt: dict | None = None,
              dist: distributed.Dist = distributed.Dist()) -> tuple[Run, Any]:
    """Model, data, optimizer and schedule for ``options``; restored from ``resume_ckpt`` when given."""
    from yoloswap.backbones.freeze import apply_freezing
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.data.dataset import DetectionDataset, build_dataloader
    from yoloswap.data.formats import load_data_config
    from yoloswap.data.synthetic import builtin_data_yaml
    from yoloswap.engine.optim import build_optimizer
    from yoloswap.assembly import DetectorPlan, build_detector, detector_from_plan
    from yoloswap.presets import preset_from_dict
    from yoloswap.probe import fit_to_size, resolve_device

    options.check()
    if options.workers is None:
        options = dataclasses.replace(options, workers=default_workers(int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))))
    seed_everything(options.seed)
    device = resolve_device(options.device)
    if device.type == "meta":
        raise UsageError("--device meta cannot train; use cpu or cuda")
    device = distributed.setup(dist, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels once

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
    per_rank_batch = distributed.per_process_batch(options.batch_size, dist.world_size)
    train_loader = build_dataloader(train_ds, per_rank_batch, True, options.workers, options.seed + dist.rank,
                                    sampler=sampler)
    val_loader = build_dataloader(val_ds, options.batch_size * VAL_BATCH_MULT, False, options.workers, options.seed)

    # --- model: preset (+ overrides) → probe → neck/head fitted → weights → freezing
    weights_report = None
    if resume_ckpt is not None:  # the checkpoint's own preset and plan; its weights are restored below
        preset = preset_from_dict(resume_ckpt["config"]["preset"], origin="checkpoint preset")
        plan = DetectorPlan.from_dict(resume_ckpt["plan"])
        model = detector_from_plan(_build_backbone(preset), plan, preset)
    else:
        init_ckpt = _detector_checkpoint(options.weights)  # read once: decides how --weights is used
        size = (options.img_size, options.img_size)
        given = _with_overrides(resolve_backbone(options.backbone), options, init_ckpt is not None)
        preset = fit_to_size(given, size)
        if preset is not given:
            log(f"backbone: {preset.name} built for {size[0]}x{size[1]} inputs (as given it runs only at its "
                "pretrained size or multiples of it); the run records this, so its checkpoints rebuild the same")
        model, plan = build_detector(preset, len(names), size, options.neck_width)
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
    amp_dtype = amp_dtype_for(device, options.amp)
    recorded = (resume_ckpt or {}).get("config", {}).get("precision")
    if amp_dtype is not None and device.type == "cpu" and recorded in DTYPES:
        amp_dtype = DTYPES[recorded]  # a resumed run continues in the arithmetic it started in
    elif amp_dtype is not None and device.type == "cpu":
        # bf16 only where it is faster for this model; rank 0 measures (alone on the cores), every rank follows it.
        # The anchors do not change the arithmetic, and are left out so a run and its resume agree on the key.
        describe = {"model": preset.to_dict()["model"],
                    "plan": {k: v for k, v in plan.to_dict().items() if k != "anchors"}}
        measured = cpu_precision(model, describe, per_rank_batch, options.img_size, log) if dist.main else None
        amp_dtype = distributed.broadcast(dist, measured)

    # --- optimisation: `auto` resolved to a concrete optimizer and lr (recorded in the options, so config.yaml,
    # a resume and a replay all use the same); nominal batch by accumulation, weight decay scaled to match
    choice = distributed.broadcast(dist, _choose_optimizer(options, preset, len(names), len(train_ds), model,
                                                           per_rank_batch, device, amp_dtype))
    options = dataclasses.replace(options, optimizer=choice.name, lr=choice.lr)
    accumulate_target = max(options.nominal_batch / options.batch_size, 1.0)
    accumulate = max(round(accumulate_target), 1)
    wd = options.weight_decay if options.weight_decay is not None else preset.optimizer.weight_decay
    wd *= options.batch_size * accumulate / options.nominal_batch
    optimizer = build_optimizer(
        model, choice.name, choice.lr, choice.momentum, wd, backbone_lr_mult=options.backbone_lr_mult
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    schedule = Schedule(
        epochs=options.epochs,
        iters_per_epoch=len(train_loader),
        lrf=options.lrf,
        cosine=options.cos_lr,
        warmup_epochs=options.warmup_epochs,
        warmup_bias_lr=choice.warmup_bias_lr,
        momentum=choice.momentum,
        accumulate=accumulate_target,
    )
    ema = ModelEMA(model) if options.ema and dist.main else None
    wrapped = distributed.wrap(dist, model, device)
    if options.compile:
        wrapped = torch.compile(wrapped)
    run = Run(
        options=options, out=out, preset=preset, plan=plan, names=names, category_ids=category_ids,
        model=wrapped, ema=ema, optimizer=optimizer, scaler=scaler,
        schedule=schedule, device=device, amp_dtype=amp_dtype, accumulate=accumulate, dist=dist,
        weights_report=weights_report.to_dict() if weights_report is not None else None,
        optimizer_reason=choice.reason, max_epochs=options.epochs,
    )
    if resume_ckpt is not None:
        _restore(run, resume_ckpt)
    return run, (train_loader, val_loader)


def _choose_optimizer(options: TrainOptions, preset, num_classes: int, images: int, model, batch: int,
                      device: torch.device, amp_dtype):
    """Resolve ``--optimizer auto`` from the run's length in optimizer steps (a ``--time`` run: estimated)."""
    from yoloswap.engine.optim import SHORT_RUN_STEPS, choose_optimizer, optimizer_steps

    steps = optimizer_steps(images, options.batch_size, options.nominal_batch, options.epochs)
    note = ""
    if options.time is not None and options.optimizer == "auto" and options.lr is None and steps > SHORT_RUN_STEPS:
        # Only when the run could be long does its speed matter: time a step of the model (no data loading, so
        # an upper bound of the steps the budget holds) and count the epochs that fit.
        per_epoch_s = math.ceil(images / batch) * seconds_per_step(model, batch, options.img_size, device, amp_dtype)
        fit = max(1, min(options.epochs, int(options.time * 60 // max(per_epoch_s, 1e-9))))
        steps = optimizer_steps(images, options.batch_size, options.nominal_batch, fit)
        note = f" (--time {options.time:g} min: about {fit} epochs)"
    return choose_optimizer(options.optimizer, options.lr, preset.optimizer, num_classes, steps, note)


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
          console=None, progress: Progress | None = None, callbacks: list[EpochCallback] | None = None,
          extend_to: int | None = None) -> dict:
    """Run (or resume) training; returns the final metrics.

    ``console`` (a rich Console) receives the log lines; ``progress`` draws the bars (default: none);
    ``callbacks`` run after every epoch on the main process (default: CSV row, checkpoints, log line, plot);
    ``extend_to`` (with ``resume``) continues the run, finished or not, up to that many epochs.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    dist = distributed.from_env()
    log = console.print if dist.main else (lambda *a, **k: None)
    progress = progress if progress is not None and dist.main else Progress()
    callbacks = default_callbacks(log) if callbacks is None else callbacks
    try:
        with signals.stop_on_sigterm():
            return _train(options, out, exist_ok, resume, console, log, dist, progress, callbacks, extend_to)
    finally:
        runlock.release()
        distributed.cleanup(dist)


def _train(options: TrainOptions, out: Path | None, exist_ok: bool, resume: Path | None, console, log,
           dist: distributed.Dist, progress: Progress, callbacks: list[EpochCallback],
           extend_to: int | None = None) -> dict:
    from yoloswap.probe import resolve_device

    distributed.setup(dist, resolve_device(options.device))  # join the group before ranks exchange anything
    resume_ckpt = None
    if resume is not None:
        resume, resume_ckpt = _resume_checkpoint(Path(resume))
        recorded = dict(resume_ckpt["config"]["options"])
        if recorded.get("optimizer") is None:  # recorded before `auto`: it trained with the preset's optimizer
            recorded["optimizer"] = resume_ckpt["config"]["preset"]["optimizer"]["name"]
        saved = TrainOptions.from_dict(recorded)
        options = dataclasses.replace(saved, device=options.device, workers=options.workers)
        out = resume
        done = int(resume_ckpt["epoch"]) + 1
        if extend_to is not None:  # --resume RUN --epochs N: the same run, trained on to N epochs
            if extend_to <= done:
                raise UsageError(f"--epochs {extend_to}: {resume} has already trained {done} epochs; "
                                 "give more to extend it")
            log(f"extending {resume} from {options.epochs} to {extend_to} epochs (the lr schedule is refitted to "
                f"{extend_to}, so the lr rises onto the longer decay)")
            options = dataclasses.replace(options, epochs=extend_to, time=None)
            resume_ckpt["max_epochs"] = extend_to
        if done >= options.epochs:
            raise TrainingError(f"{resume} already finished all {options.epochs} epochs; extend it with "
                                f"--resume {resume} --epochs N")
        log(f"resuming {out} from epoch {int(resume_ckpt['epoch']) + 2}/{options.epochs}")
    elif dist.main:
        out = check_run_dir(out or new_run_dir(), exist_ok)
    if dist.main and out.is_dir():  # a folder that exists (resume, --exist-ok): refuse a second writer at once
        runlock.hold(out)  # one writer per run folder; only its holder may touch what is in it
        if resume_ckpt is not None:
            trim_metrics(out / "metrics.csv", int(resume_ckpt["epoch"]) + 1)  # a kill between row and checkpoint
    out = distributed.broadcast(dist, out)
    # Everything is validated and built before the run folder exists: a start that fails leaves nothing behind.
    run, (train_loader, val_loader) = build_run(options, out, log, resume_ckpt, dist)
    options = run.options
    log(distributed.describe(dist, run.device, options.batch_size))
    if dist.main:
        claim_run_dir(out, exist_ok=True)
        runlock.hold(out)
        if resume_ckpt is None:  # a new run in a reused folder (--exist-ok) overwrites it: a fresh log
            (out / "metrics.csv").unlink(missing_ok=True)
        _write_config(run)
    _log_setup(run, log, len(train_loader.dataset), len(val_loader.dataset))
    try:
        _fit(run, train_loader, val_loader, log, progress, callbacks)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM at the next safe point
        if dist.main:
            _say_how_to_resume(run, log, exc)
        raise
    if dist.main:
        _summary(run, console)
    return run.last_metrics


def _say_how_to_resume(run: Run, log, exc: KeyboardInterrupt) -> None:
    import shlex

    why = str(exc) if isinstance(exc, signals.StopRequested) else "interrupted"
    last = run.out / "weights" / "last.pt"
    if last.is_file():
        log(f"{why}: {last} holds the last finished epoch.")
        log(f"Resume with: yoloswap train --resume {shlex.quote(str(run.out))}", soft_wrap=True)  # one line to copy
    else:
        log(f"{why} before the first epoch finished; nothing to resume")


def _fit(run: Run, train_loader, val_loader, log, progress: Progress, callbacks: list[EpochCallback]) -> None:
    """The epochs: train, refit to the --time budget, validate, hand the epoch to the callbacks."""
    options, dist = run.options, run.dist
    loss_fn = unwrap(run.model).head.make_loss(options.img_size)  # each head owns its loss (and its item names)
    run.loss_names = tuple(loss_fn.names)
    epochs = options.epochs
    budget_start = time.perf_counter()
    epoch = run.start_epoch
    while epoch < epochs:
        train_loader.dataset.mosaic_enabled = mosaic_on(epoch, epochs, options.close_mosaic)
        _reseed_epoch(train_loader, options.seed + dist.rank, epoch)  # a resumed epoch replays exactly
        if dist.enabled:
            train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        losses, img_per_s = train_one_epoch(run, train_loader, loss_fn, epoch, progress)
        row = {"epoch": epoch + 1, "train/img_per_s": img_per_s}
        row.update({f"train/{n}_loss": v for n, v in zip(run.loss_names, losses)})
        row.update(_lr_columns(run.optimizer))
        if options.time is not None and epoch + 1 < run.max_epochs:
            # refitted before validating, so an epoch the budget makes the last one is validated (--val-interval)
            epochs = _refit_to_time(run, epochs, epoch + 1, time.perf_counter() - budget_start, log)
            options = run.options
        final = epoch == epochs - 1
        improved = False
        if dist.main and ((epoch + 1) % options.val_interval == 0 or final):
            metrics = _validate(run, val_loader, loss_fn, progress, epoch)
            row.update({f"val/{n}_loss": metrics.get(f"val_{n}_loss") for n in run.loss_names})
            row.update({"metrics/mAP50": metrics["map50"], "metrics/mAP50-95": metrics["map"],
                        "time/val_ms_per_img": metrics.get("val_ms_per_img")})
            run.last_metrics = metrics
            improved = fitness(metrics) > run.best_fitness
            if improved:
                run.best_fitness = fitness(metrics)
        row["time/epoch_s"] = time.perf_counter() - start
        if dist.main:
            event = EpochEnd(run, epoch, epochs, row, improved, float(sum(losses)))
            for callback in callbacks:
                callback(event)
        epoch += 1


def _refit_to_time(run: Run, epochs: int, done: int, spent_s: float, log) -> int:
    """The run's total epochs refitted to ``--time`` after ``done`` epochs (``spent_s`` seconds into the budget);
    the lr schedule, the options and config.yaml follow a change."""
    options, dist = run.options, run.dist
    fitted = distributed.broadcast(dist, fit_epochs_to_time(
        options.time * 60, spent_s, done - run.start_epoch, done, run.max_epochs))
    if fitted != epochs:
        log(f"--time {options.time:g} min: {fitted} epochs fit the budget (was {epochs})")
        run.schedule = dataclasses.replace(run.schedule, epochs=fitted)
        run.options = dataclasses.replace(options, epochs=fitted)
        if dist.main:
            _write_config(run)  # config.yaml tells the epochs the run will really train
    return fitted


def mosaic_on(epoch: int, epochs: int, close_mosaic: int) -> bool:
    """Mosaic for all but the last ``close_mosaic`` epochs, which are never more than a quarter of the run.

    The last epochs without mosaic let the model settle on whole, unstitched images (YOLOv5/Ultralytics close the
    last 10 of 100+); in a short run mosaic's variety matters more, so a 4-epoch run keeps it for 3 epochs and a
    2-epoch run for both.
    """
    closed = min(close_mosaic, int(epochs * MOSAIC_MAX_CLOSED))
    return epoch < epochs - closed


def fit_epochs_to_time(budget_s: float, spent_s: float, epochs_done_here: int, epoch: int, epochs: int) -> int:
    """Total epochs that fit ``budget_s`` at the pace so far: more or fewer than planned, never more than
    ``epochs`` (the ``--epochs`` asked for); ``epoch`` (the epochs done) = stop now.

    Called after every epoch, so the estimate follows the real pace; the lr schedule is refitted to each new total,
    so the decay still ends where training does.
    """
    per_epoch = spent_s / max(epochs_done_here, 1)
    remaining = int(max(budget_s - spent_s, 0.0) // max(per_epoch, 1e-9))
    return min(epochs, epoch + remaining)


def train_one_epoch(run: Run, loader, loss_fn, epoch: int, progress: Progress | None = None
                    ) -> tuple[list[float], float]:
    """One pass over the training data; returns the mean loss items and images per second.

    Nothing in a step waits for the device: the loss items are summed and the first non-finite loss is noted on
    the device, and read back (one sync) every :data:`READOUT_S` seconds and after the last batch. A non-finite
    loss therefore stops the run at that read-out, a fraction of a second after it happened, naming the batch
    where it first appeared.
    """
    model, optimizer, device = run.model, run.optimizer, run.device
    progress = progress or Progress()
    model.train()
    nb = len(loader)
    progress.start_epoch(epoch, run.options.epochs, nb)
    sums = None  # (N,) running sum of the loss items, on the device
    bad_batch = torch.full((), -1, dtype=torch.long, device=device)  # first batch with a non-finite loss
    bad_value = torch.zeros((), device=device)
    means: list[float] = []
    seen, start = 0, time.perf_counter()
    shown = start
    last_step = epoch * nb - 1 if epoch else -1
    optimizer.zero_grad(set_to_none=True)
    try:
        for i, (images, targets, _) in enumerate(loader):
            signals.check()  # SIGTERM: stop here, between steps
            ni = i + nb * epoch
            run.schedule.apply(optimizer, ni, epoch)
            x = images.to(device, non_blocking=True).float() / 255  # (B, 3, S, S) in [0, 1]
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, run.amp_dtype):
                outputs = model(x)
            loss, items = loss_fn([o.float() for o in outputs], targets.to(device, non_blocking=True))
            items = items.detach().float()  # (N,) named by loss_fn.names (the head interface's HeadLoss)
            first_bad = (bad_batch < 0) & ~torch.isfinite(loss.detach())
            bad_batch = torch.where(first_bad, i, bad_batch)
            bad_value = torch.where(first_bad, loss.detach().float(), bad_value)
            sums = items if sums is None else sums + items
            run.scaler.scale(loss * run.dist.world_size).backward()  # DDP averages gradients over ranks
            if ni - last_step >= run.schedule.accumulate_at(ni) or i == nb - 1:
                _optimizer_step(run)
                last_step = ni
            seen += len(images)
            now = time.perf_counter()
            if now - shown >= READOUT_S or i == nb - 1:
                shown = now
                means = _read_out(run, sums, i + 1, bad_batch, bad_value, epoch)
                stats = dict(zip(run.loss_names, means))
                stats.update(lr=optimizer.param_groups[0]["lr"], img_per_s=seen / max(now - start, 1e-9))
                if device.type == "cuda":
                    stats["mem_gb"] = torch.cuda.memory_reserved(device) / 2**30
                progress.update(i + 1, stats)
    finally:
        progress.end_epoch()
    return means, seen / max(time.perf_counter() - start, 1e-9)


def _read_out(run: Run, sums: torch.Tensor, batches: int, bad_batch: torch.Tensor, bad_value: torch.Tensor,
              epoch: int) -> list[float]:
    """The one host sync of a read-out: mean loss items so far, and the stop on a non-finite loss."""
    values = torch.cat([sums / batches, bad_batch.reshape(1).float(), bad_value.reshape(1)]).tolist()
    bad = int(values[-2])
    if bad >= 0:
        raise TrainingError(
            f"loss became {values[-1]} at epoch {epoch + 1}, batch {bad + 1}; stopping. The last good "
            f"checkpoint is {run.out / 'weights' / 'last.pt'}. Try a lower --lr, --no-amp, or check the labels"
        )
    return values[:-2]


def _optimizer_step(run: Run) -> None:
    run.scaler.unscale_(run.optimizer)
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_norm=10.0)  # no read-back: the norm stays on the device
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.model)


def _validate(run: Run, loader, loss_fn, progress: Progress, epoch: int) -> dict:
    """COCO metrics of the EMA model, with the time per validation image (``val_ms_per_img``); refreshes
    ``val_predictions.png`` (a few images with predicted boxes)."""
    model = run.ema.module if run.ema is not None else unwrap(run.model)
    progress.start_val(len(loader))
    start = time.perf_counter()
    try:
        result = evaluate(model, loader, run.names, run.category_ids, run.device, run.amp_dtype, loss_fn=loss_fn,
                          previews=8, on_batch=lambda: (signals.check(), progress.val_batch()))
    finally:
        progress.end_val()
    metrics = dict(result.metrics)
    metrics["val_ms_per_img"] = 1000 * (time.perf_counter() - start) / max(len(loader.dataset), 1)
    if result.previews:
        from yoloswap.engine.plots import save_prediction_grid

        save_prediction_grid(result.previews, run.names, run.out / "val_predictions.png")
    return metrics


# ------------------------------------------------------------------------------------------------ checkpoints


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
        "max_epochs": run.max_epochs,
        "metrics": {k: float(v) for k, v in run.last_metrics.items() if isinstance(v, (int, float))},
        "rng": rng_state(),
    }
    weights = run.out / "weights"
    if best:  # best.pt first, so a kill between the two saves cannot leave a run without its best.pt
        lean = {k: v for k, v in ckpt.items() if k not in RESUME_KEYS}
        lean["model"] = ckpt["ema"] if ckpt["ema"] is not None else ckpt["model"]
        save_checkpoint(lean, weights / "best.pt")
    save_checkpoint(ckpt, weights / "last.pt")  # last: it is the commit point a resume starts from


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
    run.max_epochs = int(ckpt.get("max_epochs", run.max_epochs))
    run.optimizer_reason = ckpt["config"].get("optimizer_choice") or run.optimizer_reason  # why, as first decided
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
        "optimizer_choice": run.optimizer_reason,
        "precision": precision_name(run.amp_dtype),
        "max_epochs": run.max_epochs,
    }


def _write_config(run: Run) -> None:
    """The fully resolved config (preset + options + probed plan) as YAML, for people and for diffing runs."""
    path = run.out / "config.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(_config(run), sort_keys=False, allow_unicode=True))
    tmp.replace(path)


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
        f"{run.accumulate} (from 1 during warmup); {o.workers} workers; device {run.device}"
        f"{' ' + str(run.amp_dtype).replace('torch.', '') if run.amp_dtype else ''}")
    log(f"optimizer: {o.optimizer} lr {o.lr:g} ({run.optimizer_reason})")


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
    sizes = [f"{name} {(run.out / 'weights' / name).stat().st_size / 2**20:.1f} MB"
             for name in ("best.pt", "last.pt") if (run.out / "weights" / name).is_file()]
    table.add_row("checkpoints", ", ".join(sizes))
    console.print(table)


# ------------------------------------------------------------------------------------------------ resume


def _reseed_epoch(loader, seed: int, epoch: int) -> None:
    """Make epoch N's shuffle order and augmentation depend on (seed, N) only, not on the epochs this process
    happened to run before it, so a run resumed at epoch N replays it exactly (with ``--workers 0``; persistent
    workers keep their own streams). Epoch 0 keeps the loader's own seeding."""
    epoch_seed = seed if epoch == 0 else int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    if loader.generator is not None:
        loader.generator.manual_seed(epoch_seed)
    if loader.num_workers == 0:
        loader.dataset.reseed(epoch_seed)
