"""Checkpoint files that survive a crash mid-save and never run code when loaded.

Saving writes a temporary file next to the destination, forces it to disk and then renames it over the
destination; a rename within one folder is atomic, so a run killed at any moment leaves either the old or the new
checkpoint, never half of one. Loading uses ``torch.load(weights_only=True)``, which only rebuilds tensors and
plain containers: a pickle that would import and call anything is refused before any of it runs.

Because of that, checkpoints may only hold plain Python values (dict, list, tuple, str, int, float, bool, None),
tensors, dtypes and devices. :func:`rng_state` converts the random generators' states into exactly that.
"""

from __future__ import annotations

import collections
import errno
import os
import pickle
import pickletools
import random
import re
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoloswap.errors import CheckpointError

_SAFETENSORS_SUFFIX = ".safetensors"
# Exact types: a subclass (numpy.float64 is a float, an Enum may be a str) pickles as its own class and is refused.
_PLAIN_TYPES = (str, int, float, bool, bytes, type(None))
_KEY_TYPES = (str, int, float, bool, type(None))


def _check_loadable(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` naming the first value ``weights_only`` loading would refuse.

    Catching this at save time turns "the resume fails three days later" into an error in the code that put a
    numpy array or a dataclass into the checkpoint.
    """
    if type(obj) in _PLAIN_TYPES or isinstance(obj, (torch.Tensor, torch.dtype, torch.device, torch.Size)):
        return
    if type(obj) in (dict, collections.OrderedDict):
        for key, value in obj.items():
            if type(key) not in _KEY_TYPES:
                raise TypeError(f"{where} has a key of type {type(key).__name__}; use str or int keys")
            _check_loadable(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple, set):
        for i, value in enumerate(obj):
            _check_loadable(value, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which weights_only loading refuses; "
        "store plain Python values and tensors"
    )


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(obj: dict, path: Path) -> None:
    """Write ``obj`` to ``path`` atomically (``.safetensors`` paths take a flat dict of tensors).

    The previous file at ``path`` stays intact until the new one is completely on disk.
    """
    path = Path(path)
    safetensors = path.suffix == _SAFETENSORS_SUFFIX
    if safetensors:
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            raise TypeError(f"{path}: a .safetensors file holds only a flat dict of str -> tensor")
    else:
        _check_loadable(obj)

    # Same folder as the destination (a rename across file systems is not atomic); "x" mode honours the umask,
    # so the final file gets ordinary permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            if safetensors:
                from safetensors.torch import save as safetensors_bytes

                f.write(safetensors_bytes({k: v.contiguous() for k, v in obj.items()}))
            else:
                torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        _remove_quietly(tmp)
        os_error = _os_error_inside(e)
        if os_error is None:
            raise
        raise CheckpointError(_write_failure(path, os_error)) from e
    _fsync_dir(path.parent)
    _remove_orphans(path)


def _remove_orphans(path: Path) -> None:
    """Delete temp files that an earlier process killed mid-save (``kill -9``, power loss) left next to ``path``.

    Only files of processes that no longer exist: another process may be saving right now."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _remove_quietly(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


# errno → what a user can act on; anything else is reported with the system's own words
_WRITE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _write_failure(path: Path, error: OSError) -> str:
    """One line: which file, why, and that the previous checkpoint (if any) is untouched."""
    reason = _WRITE_ERRORS.get(error.errno) or error.strerror or _first_line(error)
    kept = f"the previous {path.name} is intact" if path.is_file() else "nothing was written"
    return f"cannot write checkpoint {path}: {reason} ({kept}); free space or fix the folder, then resume"


def _os_error_inside(error: BaseException | None) -> OSError | None:
    """The OSError behind ``error`` (itself, or one it was raised from: a writer may wrap the system's error)."""
    for _ in range(8):
        if error is None or isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _remove_quietly(tmp: Path) -> None:
    """Remove a half-written temp file; on a read-only or failing disk even that may fail, which must not hide
    the original error."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


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


def rng_state() -> dict:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global generators, weights_only-loadable."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "name": str(name),
            "keys": np.asarray(keys).tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),  # ByteTensor
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]  # one ByteTensor per device
    return state


def set_rng_state(state: dict) -> None:
    """Restore generators captured by :func:`rng_state`.

    CUDA states are restored for as many devices as both the saved state and this machine have, so a run
    resumed on fewer GPUs (or on CPU) still resumes.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["name"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state.cpu(), device)
