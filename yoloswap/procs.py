"""Child processes that end with their parent: a leaf, used by the data loader's workers and torchrun's ranks."""

from __future__ import annotations

import os
import signal
import sys


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux; elsewhere nothing).

    A process whose parent was killed with ``kill -9`` would otherwise live on: a torchrun rank would keep training
    and writing the run folder beside a resume, a DataLoader worker would print ``ConnectionResetError`` when it
    next tries to hand a batch over.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os.kill(os.getpid(), sig)
