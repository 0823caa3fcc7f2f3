"""What happens around the training loop but is not training: progress display and per-epoch side effects.

The loop only trains. After each epoch it hands an :class:`EpochEnd` to a list of plain callables (write
the CSV row, save checkpoints, draw the plot, log a line), and during an epoch it reports to a :class:`Progress`
that the caller supplies (the CLI draws rich bars; a library user gets silence by default). Each side effect is
then one small function, and none of them hides inside the timed part of the loop.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from yoloswap.training.state import Run, save_run


class Progress:
    """Progress of training and validation. These no-ops are the default; the CLI passes a drawing subclass.

    ``update`` is called at every read-out of the loss (a few times a second), never once per step.
    """

    def start_epoch(self, epoch: int, epochs: int, batches: int) -> None:
        """``epoch`` is 0-based; ``batches`` per epoch."""

    def update(self, done: int, stats: dict[str, float]) -> None:
        """``done`` batches of this epoch so far; ``stats``: mean loss items, lr, img/s (and GPU memory in GB)."""

    def end_epoch(self) -> None:
        pass

    def start_val(self, batches: int) -> None:
        pass

    def val_batch(self) -> None:
        pass

    def end_val(self) -> None:
        pass


@dataclass
class EpochEnd:
    """One finished epoch, as the callbacks see it."""

    run: Run
    epoch: int  # 0-based
    epochs: int  # the run's total, after any --time refit
    row: dict  # the metrics.csv row
    improved: bool  # best fitness so far: best.pt is written
    loss: float  # sum of the mean training loss items


EpochCallback = Callable[[EpochEnd], None]


def metric_columns(loss_names: tuple[str, ...]) -> tuple[str, ...]:
    """metrics.csv's columns for a loss with items ``loss_names`` (the head's loss names them)."""
    return (
        "epoch", *(f"train/{n}_loss" for n in loss_names), *(f"val/{n}_loss" for n in loss_names),
        "metrics/precision", "metrics/recall", "metrics/mAP50", "metrics/mAP50-95", "lr/backbone", "lr/other", "time/epoch_s", "train/img_per_s",
        "time/val_ms_per_img",
    )


def write_metrics_row(event: EpochEnd) -> None:
    """Append the epoch's row to ``metrics.csv`` (header first when the file is new)."""
    append_metrics(event.run.out / "metrics.csv", event.row, metric_columns(event.run.loss_names))


def append_metrics(path: Path, row: dict, columns: tuple[str, ...]) -> None:
    """Append ``row``; a file begun under other columns (a run resumed from an older version) keeps its own."""
    new = not path.exists()
    if not new:
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), None)
        columns = tuple(header) if header else columns
        new = not header
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerow({k: ("" if row.get(k) is None else _fmt(row[k])) for k in columns})


def trim_metrics(path: Path, last_epoch: int) -> None:
    """Keep only the rows of epochs up to ``last_epoch`` (1-based): a run killed between writing a row and
    saving its checkpoint redoes that epoch, and must not log it twice. Rewritten atomically."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if (r.get("epoch") or "").isdigit() and int(r["epoch"]) <= last_epoch]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=reader.fieldnames or [], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def save_checkpoints(event: EpochEnd) -> None:
    """last.pt every epoch, best.pt when fitness improved."""
    save_run(event.run, event.epoch, best=event.improved)


def log_epoch(log: Callable[..., None]) -> EpochCallback:
    def callback(event: EpochEnd) -> None:
        m = event.run.last_metrics
        if m:
            log(f"epoch {event.epoch + 1}/{event.epochs}: mAP@.5:.95 {m['map']:.4f}  mAP@.5 {m['map50']:.4f}  "
                f"loss {event.loss:.4f}  {event.row['train/img_per_s']:.1f} img/s")

    return callback


def draw_results(log: Callable[..., None]) -> EpochCallback:
    def callback(event: EpochEnd) -> None:
        out = event.run.out
        try:
            from yoloswap.reports.plots import plot_results  # matplotlib only when a plot is drawn

            plot_results(out / "metrics.csv", out / "results.png")
        except Exception as exc:  # a plot must never end a run
            log(f"[yellow]warning:[/] could not draw results.png ({exc})")

    return callback


def default_callbacks(log: Callable[..., None]) -> list[EpochCallback]:
    """The side effects of every epoch on the main process, in order: CSV row, checkpoints, log line, plot."""
    return [write_metrics_row, save_checkpoints, log_epoch(log), draw_results(log)]
