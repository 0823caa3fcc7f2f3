"""The training progress shown to a person (CLI and Python API): rich bars on a terminal, plain timed lines otherwise (the engine only
reports; see training/hooks.py ``Progress``)."""

from __future__ import annotations

import os
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from yoloswap.training.hooks import Progress as TrainProgress


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
        self._bar.update(self._task, completed=done, stats=_stats_text(stats))

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


PLAIN_INTERVAL_S = 5.0  # a plain progress line this often when stderr is not a terminal (YOLOSWAP_PROGRESS_S)


def make_progress(console: Console) -> TrainProgress:
    """The rich bar on a terminal; plain timed lines when stderr goes to a file, a pipe, CI or a notebook, where
    a bar that redraws in place shows nothing until it is done."""
    return RichProgress(console) if console.is_terminal else PlainProgress(console)


def _stats_text(stats: dict[str, float]) -> str:
    losses = " ".join(f"{k} {v:.3f}" for k, v in stats.items() if k not in ("lr", "img_per_s", "mem_gb"))
    text = f"{losses}  lr {stats['lr']:.2e}  {stats['img_per_s']:.1f} img/s"
    if "mem_gb" in stats:
        text += f"  mem {stats['mem_gb']:.1f}G"
    return text


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class PlainProgress(TrainProgress):
    """One plain line every ``interval`` seconds while an epoch or a validation runs: epoch, batch, losses,
    img/s and the epoch's ETA. A timer thread writes them, so a line comes on time even while one slow step or
    the first batch (which reports nothing yet) is running."""

    def __init__(self, console: Console, interval: float | None = None) -> None:
        self.console = console
        self.interval = interval if interval is not None else float(
            os.environ.get("YOLOSWAP_PROGRESS_S", PLAIN_INTERVAL_S))
        self._lock = threading.Lock()
        self._line = None  # () -> str, what the next tick prints
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def _start(self, line) -> None:
        self._line = line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, args=(self._stop,), daemon=True)
        self._thread.start()

    def _tick(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            with self._lock:
                text = self._line()
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _end(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            self._stop = self._thread = None

    def start_epoch(self, epoch: int, epochs: int, batches: int) -> None:
        self._ep, self._epochs, self._batches = epoch + 1, epochs, batches
        self._done, self._stats, self._t0 = 0, None, time.perf_counter()
        self._start(self._train_line)

    def _train_line(self) -> str:
        head = f"epoch {self._ep}/{self._epochs}  batch {self._done}/{self._batches}"
        elapsed = time.perf_counter() - self._t0
        if not self._stats:
            return f"{head}  first batch running ({_clock(elapsed)} so far)"
        eta = elapsed / max(self._done, 1) * (self._batches - self._done)
        return f"{head}  {_stats_text(self._stats)}  elapsed {_clock(elapsed)}  eta {_clock(eta)}"

    def update(self, done: int, stats: dict[str, float]) -> None:
        with self._lock:
            self._done, self._stats = done, dict(stats)

    def end_epoch(self) -> None:
        """Stop the timer, then one last line with the epoch's final losses (a short epoch may end between
        ticks, and a log should still show how each epoch ended)."""
        self._end()
        if self._stats:
            self.console.print(self._train_line(), markup=False, highlight=False, soft_wrap=True)

    def start_val(self, batches: int) -> None:
        self._val_done, self._val_batches, self._t0 = 0, batches, time.perf_counter()
        self._start(lambda: f"  val batch {self._val_done}/{self._val_batches}  "
                            f"elapsed {_clock(time.perf_counter() - self._t0)}")

    def val_batch(self) -> None:
        with self._lock:
            self._val_done += 1

    def end_val(self) -> None:
        self._end()
