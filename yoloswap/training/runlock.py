"""One writer per run folder: an OS lock on ``RUN/.lock`` that dies with the process holding it.

Two trainers writing one folder interleave ``metrics.csv`` and overwrite each other's checkpoints (seen when
``torchrun`` was killed with ``kill -9`` and a resume was started beside its orphaned workers). ``fcntl.flock`` is
released by the kernel when the holder exits however it exits, so a crashed run never leaves a stale lock; the
file also names the holder (pid and host) so the refusal can say who to stop.

Only the process that writes the folder (rank 0 under torchrun) takes the lock.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from yoloswap.errors import TrainingError

LOCK_NAME = ".lock"

_held: dict[Path, int] = {}  # run folder -> open file descriptor holding its lock (this process)


def hold(run_dir: Path) -> None:
    """Take ``run_dir``'s lock for this process, or raise naming the live process that has it.

    Holding it twice in one process is a no-op; :func:`release` (or the process ending) lets it go.
    """
    key = Path(run_dir).resolve()
    if key in _held:
        return
    try:
        import fcntl
    except ImportError:  # Windows: no flock; one writer is then the user's business
        return
    path = key / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise TrainingError(
            f"run folder {run_dir} is in use by {holder}; stop it first (a killed run releases it), "
            "or train into another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[key] = fd


def release(run_dir: Path | None = None) -> None:
    """Let go of ``run_dir``'s lock (every lock this process holds when ``None``)."""
    keys = list(_held) if run_dir is None else [Path(run_dir).resolve()]
    for key in keys:
        fd = _held.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def holder(run_dir: Path) -> str | None:
    """Who holds ``run_dir``'s lock right now ("process PID on HOST"), or None when nobody does."""
    try:
        import fcntl
    except ImportError:
        return None
    path = Path(run_dir) / LOCK_NAME
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        return None
    finally:
        os.close(fd)
