"""Checkpoint files that survive a crash mid-save and never run code when loaded.

Saving writes a temporary file next to the destination, forces it to disk and then renames it over the
destination; a rename within one folder is atomic, so a run killed at any moment leaves either the old or the new
checkpoint, never half of one. Loading (:mod:`yoloswap.safeload`) uses ``torch.load(weights_only=True)``, which
only rebuilds tensors and plain containers: a pickle that would import and call anything is refused before any of
it runs.

Because of that, checkpoints may only hold plain Python values (dict, list, tuple, str, int, float, bool, None),
tensors, dtypes and devices. :func:`rng_state` converts the random generators' states into exactly that.
"""

from __future__ import annotations

import collections
import errno
import os
import random
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoloswap.errors import CheckpointError
from yoloswap.safeload import _SAFETENSORS_SUFFIX, _first_line, load_checkpoint  # noqa: F401  (re-exported)

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
