"""Which device a command runs on: one rule for every command (``--device auto|cpu|cuda|cuda:N|meta``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from yoloswap.errors import UsageError


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (``taskset``, a container's cpuset), else the count.

    ``os.cpu_count()`` counts the machine's CPUs even when the process is pinned to one of them; sizing DataLoader
    workers by it puts two workers and the training loop on one core (and PyTorch warns about it).
    """
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def resolve_device(device: str) -> "torch.device":
    """``auto`` → CUDA when present, else CPU; ``cuda`` without CUDA is a clear error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}' (use auto, cpu, cuda, cuda:N or meta)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device} was asked for, but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev
