"""Loading checkpoint and weights files without ever running code from them.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers: a pickle that would import and call
anything is refused before any of it runs; ``.safetensors`` files hold tensors only. This module is a leaf (torch
and the error family), so everything that reads a file of tensors, from pretrained backbone weights to training
checkpoints, uses the one safe loader without depending on the training engine.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from pathlib import Path

import torch

from yoloswap.errors import CheckpointError

_SAFETENSORS_SUFFIX = ".safetensors"
ACCEPTED = ("accepted: a yoloswap checkpoint (runs/NAME/weights/best.pt), a torch.save file of tensors (.pt, .pth, "
            ".pth.tar, .bin) or a .safetensors file; for backbone weights also none, torchvision://MODEL, "
            "timm://MODEL or an https:// URL")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint saved by :func:`save_checkpoint` (or any ``.pt``/``.pth``/``.safetensors`` file of weights).

    Raises :class:`CheckpointError` for a missing file, a corrupt or truncated one, and one whose pickle would
    need arbitrary code to load.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")

    if path.suffix == _SAFETENSORS_SUFFIX:
        from safetensors.torch import load_file

        try:
            return load_file(path, device=str(map_location))
        except Exception as e:  # safetensors raises its own error types for a bad header or short file
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({_first_line(e)})") from e

    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_global(e, path)
        if refused is None:
            if _looks_like_text(path):
                raise CheckpointError(f"{path} is a text file, not a checkpoint; {ACCEPTED}") from e
            raise CheckpointError(f"checkpoint {path} is corrupt or truncated (not a readable pickle)") from e
        if refused == _UNSUPPORTED:
            raise CheckpointError(
                f"checkpoint {path} is a pickle that safe loading cannot read (unsupported pickle instructions); "
                "re-save it with torch.save"
            ) from e
        raise CheckpointError(
            f"checkpoint {path} would need arbitrary unpickling (it imports {refused}), which yoloswap refuses "
            "for safety; if you trust its source, re-save only its tensors and plain values"
        ) from e
    except RuntimeError as e:
        if "PytorchStreamReader" not in str(e) and "zip archive" not in str(e):
            raise CheckpointError(f"checkpoint {path} could not be loaded: {_first_line(e)}") from e  # e.g. device
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({_first_line(e)})") from e
    except OSError as e:  # permissions, I/O errors: the file may be fine
        raise CheckpointError(f"checkpoint {path} cannot be read: {e.strerror or _first_line(e)}") from e
    except (EOFError, ValueError, KeyError, IndexError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({_first_line(e)})") from e

    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict")
    return obj


def _looks_like_text(path: Path) -> bool:
    """Whether ``path`` starts like text (a YAML, a CSV, a README, a saved web page): printable UTF-8 and no NUL
    bytes, which a pickle or a zip archive of tensors always has."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8", errors="strict") if len(head) < 4096 else head[:4000].decode("utf-8", "ignore")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\n\r\t" for ch in text)


def _first_line(error: BaseException) -> str:
    """The first line of an exception message, for one-line user errors."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


_UNSUPPORTED = "<unsupported>"


def _refused_global(error: pickle.UnpicklingError, path: Path) -> str | None:
    """What a refused pickle wanted to import, ``_UNSUPPORTED`` for a code-free pickle torch cannot read,
    or ``None`` if the file is simply not a valid pickle.

    torch names the global when it gets that far. When it stops earlier (an opcode it does not support), we
    read the pickle's opcodes with ``pickletools`` - which parses but never executes - to tell a real pickle
    that imports code from random bytes.
    """
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if match:
        return match.group(1)
    data = _pickle_bytes(path)
    if data is None:
        return None
    imports = []
    strings: list[str] = []
    count = 0
    try:
        for opcode, arg, _ in pickletools.genops(data):
            count += 1
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            elif opcode.name in ("GLOBAL", "INST"):  # both carry "module name" inline
                imports.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                imports.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # pickletools raises ValueError for unknown opcodes and truncation alike
        return None
    if count < 3:  # PROTO + STOP or less: random bytes that happen to look like an empty pickle
        return None
    foreign = [name for name in imports if not name.startswith(("torch.", "collections."))]
    return (foreign or imports or [_UNSUPPORTED])[0]


def _pickle_bytes(path: Path) -> bytes | None:
    """The pickle stream of a checkpoint: ``data.pkl`` inside a torch zip archive, or the file itself."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                return archive.read(name) if name else None
        return path.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
