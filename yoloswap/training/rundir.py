"""A training run's folder: refused when it holds another run (with the hint that fits it), then claimed."""

from __future__ import annotations

from pathlib import Path

from yoloswap.checkpoint import load_checkpoint
from yoloswap.errors import CheckpointError, TrainingError
from yoloswap.run_folders import new_run_dir  # noqa: F401  (the naming rule, re-exported for training callers)


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
