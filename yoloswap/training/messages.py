"""What a run tells its user: the set-up, the plan (how long, what it should reach), the time left after the first
epoch, and at the end a table and a plain verdict on whether the detector detects."""

from __future__ import annotations

import time

from yoloswap.config.options import BUILTIN_SET_DEFAULTS, DETECTS_MAP50, MIN_LEARNING_EPOCHS
from yoloswap.training.state import Run


def epochs_text(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def log_plan(run: Run, log) -> None:
    """Before the first batch: what the run will do, and on the built-in set what it should reach."""
    o = run.options
    budget = f" inside a {o.time:g}-minute --time budget" if o.time is not None else ""
    expect = ""
    if o.data is None and o.time is None and o.epochs >= BUILTIN_SET_DEFAULTS["epochs"]:
        expect = (f"; on the built-in set README's main job (ConvNeXt-T, yolov8 head, from scratch) reaches "
                  f"mAP@.5 ≈ {DETECTS_MAP50:g} by then")
    elif o.epochs - run.start_epoch < MIN_LEARNING_EPOCHS:
        from yoloswap.training.setup import weights_loaded

        expect = ("; so few epochs teach the new neck and head little, even on pretrained weights (a low mAP is "
                  "expected)" if weights_loaded(o, run.preset) else
                  "; so few epochs teach a detector from scratch little (mAP near 0 is expected)")
    log(f"plan: {epochs_text(o.epochs - run.start_epoch)}{budget}{expect}; the time it takes is estimated after the "
        "first epoch")


def log_time_left(log, epoch_s: float, left: int, first: bool = True) -> None:
    """After the first epoch, and again after the second (which has no start-up costs in it, so is the pace)."""
    finish = time.strftime("%H:%M", time.localtime(time.time() + epoch_s * left))
    which = "the first epoch" if first else "the second epoch, without start-up costs,"
    log(f"{which} took {_clock(epoch_s)}; the {epochs_text(left)} left take about {_clock(epoch_s * left)} "
        f"more (done near {finish})")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def log_setup(run: Run, log, n_train: int, n_val: int) -> None:
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


def summary(run: Run, console, final=None) -> None:
    from rich.table import Table

    if final is not None and final.accumulator.details is not None:
        from yoloswap.reports.class_table import class_table

        console.print(class_table(final.accumulator.details, final.metrics, title="final validation, per class"))

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
    console.print(verdict(run.last_metrics.get("map50")), soft_wrap=True)


def verdict(map50: float | None) -> str:
    """One plain line at the end of a run: does the detector detect, and if not, what to try."""
    if map50 is None:
        return "not validated: no mAP to judge the detector by"
    if map50 >= DETECTS_MAP50:
        return f"the detector detects: mAP@.5 {map50:.3f} ≥ {DETECTS_MAP50:g} (boxes in val_predictions.png)"
    return (f"the detector does not detect well yet: mAP@.5 {map50:.3f} < {DETECTS_MAP50:g}. Train longer "
            "(more --epochs, or no --time), start from pretrained weights (drop --weights none), or try a "
            "smaller backbone (yolov5n learns fastest)")
