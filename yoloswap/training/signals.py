"""Stopping a run on request: SIGTERM (what schedulers send before preemption) stops it like Ctrl-C.

Ctrl-C raises ``KeyboardInterrupt`` at once, as Python does. SIGTERM only sets a flag; the loop looks at it between
steps and validation batches (a plain bool, no device sync) and stops there with :class:`StopRequested`, never in
the middle of writing a checkpoint. Either way the run keeps its last.pt from the last finished epoch.
"""

from __future__ import annotations

import contextlib
import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it

_requested: list[int] = []


class StopRequested(KeyboardInterrupt):
    """The run was asked to stop by ``signum``; a KeyboardInterrupt, so every Ctrl-C path handles it too."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 128 + self.signum)


def check() -> None:
    """Raise :class:`StopRequested` if a stop signal arrived since :func:`stop_on_sigterm` began."""
    if _requested:
        raise StopRequested(_requested[0])


@contextlib.contextmanager
def stop_on_sigterm():
    """Within this block SIGTERM requests a stop at the next safe point (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: _requested.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested.clear()
