"""Run folders: ``runs/<job>/exp``, ``exp2``, ... for every command that writes one (train, predict, compare)."""

from __future__ import annotations

from pathlib import Path

from yoloswap.errors import TrainingError


def new_run_dir(base: Path = Path("runs/train"), name: str = "exp") -> Path:
    """``runs/train/exp``, ``exp2``, ``exp3``…: the first that does not exist yet."""
    for i in range(1, 10_000):
        candidate = base / (name if i == 1 else f"{name}{i}")
        if not candidate.exists():
            return candidate
    raise TrainingError(f"{base}: too many runs; pass --out")
