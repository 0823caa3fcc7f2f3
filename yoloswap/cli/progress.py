"""The training progress bars the CLI draws (the engine only reports; see train/hooks.py ``Progress``)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from yoloswap.train.hooks import Progress as TrainProgress


class RichProgress(TrainProgress):
    """One bar per epoch that stays on screen, a transient bar for validation. Refreshed by rich's own timer
    (4 Hz), and fed only at the trainer's read-outs, so drawing never slows a step."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._bar: Progress | None = None
        self._task = None

    def start_epoch(self, epoch: int, epochs: int, batches: int) -> None:
        columns = (TextColumn("[bold]epoch {task.fields[ep]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
        self._bar = Progress(*columns, console=self.console, transient=False, refresh_per_second=4)
        self._bar.start()
        self._task = self._bar.add_task("train", total=batches, ep=f"{epoch + 1}/{epochs}", stats="")

    def update(self, done: int, stats: dict[str, float]) -> None:
        losses = " ".join(f"{k} {v:.3f}" for k, v in stats.items() if k not in ("lr", "img_per_s", "mem_gb"))
        text = f"{losses}  lr {stats['lr']:.2e}  {stats['img_per_s']:.1f} img/s"
        if "mem_gb" in stats:
            text += f"  mem {stats['mem_gb']:.1f}G"
        self._bar.update(self._task, completed=done, stats=text)

    def end_epoch(self) -> None:
        self._bar.stop()

    def start_val(self, batches: int) -> None:
        self._bar = Progress(TextColumn("[bold]  val"), BarColumn(), MofNCompleteColumn(), console=self.console,
                             transient=True, refresh_per_second=4)
        self._bar.start()
        self._task = self._bar.add_task("val", total=batches)

    def val_batch(self) -> None:
        self._bar.advance(self._task)

    def end_val(self) -> None:
        self._bar.stop()
