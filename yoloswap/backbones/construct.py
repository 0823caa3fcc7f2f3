"""Building a library model safely: on the meta device when it can be, on the CPU when it cannot, and with one
line naming the cause when it cannot be built at all.

A meta-device build allocates nothing, which is what makes probing any of timm's or torchvision's models cheap.
A few constructors compute their own architecture with tensor arithmetic (torchvision's RegNet turns its widths
into a list with ``.tolist()``), and a meta tensor holds no numbers to read back; those are built for real on the
CPU and then moved to the meta device, so callers still get a shape-only model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from yoloswap.errors import UsageError

T = TypeVar("T")


def construct(make: Callable[[], T], label: str) -> T:
    """``make()`` on the current default device (``with torch.device(...)``), falling back to a CPU build moved to
    meta when the constructor needs real numbers. Any other failure becomes a :class:`UsageError` naming ``label``.
    """
    import torch

    try:
        return make()
    except (NotImplementedError, RuntimeError) as exc:
        if torch.get_default_device().type != "meta" or "meta" not in str(exc):
            raise UsageError(f"{label} cannot be built ({cause(exc)})") from None
    except TypeError as exc:
        raise UsageError(f"{label} does not accept these settings ({cause(exc)})") from None
    except Exception as exc:  # a library's own check (AssertionError, ValueError, ...): one line, not a traceback
        raise UsageError(f"{label} cannot be built ({cause(exc)})") from None
    try:
        with torch.device("cpu"):
            model = make()
    except Exception as exc:
        raise UsageError(f"{label} cannot be built ({cause(exc)})") from None
    return model.to("meta")


def cause(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message (libraries' asserts are often
    bare, so the type alone has to say something)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__} in the model's own code"
