"""Reading pickled checkpoints of other YOLO codebases without running any of their code.

``yolov5s.pt`` (the YOLOv5 repository) and ``yolov5su.pt`` (Ultralytics) are ``torch.save`` files of live
``nn.Module`` objects: their pickles name classes such as ``models.yolo.Model`` or
``ultralytics.nn.tasks.DetectionModel``. ``torch.load(weights_only=True)`` rightly refuses them, and loading them
the ordinary way would import and run those packages (or anything a crafted file names).

This unpickler imports nothing the file names. Tensors and plain containers are rebuilt by torch's own rebuild
functions (an allowlist); every class the file names becomes an :class:`Inert` stand-in that only holds the
attributes the pickle gives it, so no constructor, ``__setstate__`` or ``__reduce__`` of the file's classes runs.
A pickle that asks to *call* something outside the allowlist (a ``__reduce__`` returning ``os.system``, say), or
that names anything from a system module, is refused with one line before anything is called. A leaf like
:mod:`yoloswap.safeload`: torch and the error family only.
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from yoloswap.errors import CheckpointError

# Modules whose names alone mark a pickle as an attack: they run processes, code or imports.
SYSTEM_MODULES = ("os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "shutil", "socket",
                  "importlib", "runpy", "pty", "ctypes", "pickle", "_pickle", "code", "codeop", "webbrowser",
                  "marshal", "types", "functools", "operator", "io", "tempfile", "signal", "multiprocessing",
                  "threading", "asyncio", "inspect", "pdb", "timeit", "platform")


class Refused(pickle.UnpicklingError):
    """The pickle asked for code; ``what`` names it."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _InertType(type):
    """The metaclass of stand-ins: calling a stand-in class (pickle's REDUCE) builds an inert holder of the
    arguments for a class name, and is refused for a function name (``lower_case``: a call, not a class)."""

    def __call__(cls, *args, **kwargs):
        if not cls.class_name.rsplit(".", 1)[-1][:1].isupper():
            raise Refused(f"a call of {cls.class_name}")
        obj = cls.__new__(cls)
        obj.args = args
        return obj


class Inert(metaclass=_InertType):
    """A stand-in for one object of a class the file names: ``class_name`` ("models.common.Conv"), the
    attributes its pickle gave (``attrs``), and any constructor arguments or items it carried. Nothing else."""

    class_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":
        obj = object.__new__(cls)
        object.__setattr__(obj, "attrs", {})
        object.__setattr__(obj, "args", args)
        object.__setattr__(obj, "items", [])
        return obj

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            for part in state:
                if isinstance(part, dict):
                    self.attrs.update(part)
        elif isinstance(state, dict):
            self.attrs.update(state)
        else:
            self.attrs["__state__"] = state

    def __setitem__(self, key: Any, value: Any) -> None:  # dict subclasses: SETITEMS
        self.items.append((key, value))

    def append(self, value: Any) -> None:  # list subclasses: APPENDS
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.class_name}>"


_STAND_INS: dict[str, type] = {}


def stand_in(class_name: str) -> type:
    """The one stand-in class for ``class_name``, made once per process (a type with a name, nothing more)."""
    if class_name not in _STAND_INS:
        _STAND_INS[class_name] = _InertType(class_name.rsplit(".", 1)[-1], (Inert,),
                                            {"class_name": class_name, "__module__": __name__})
    return _STAND_INS[class_name]


def _inert_value(name: str):
    """A maker of inert holders for a known data-only callable (numpy scalars, dtypes and arrays in metadata)."""
    return lambda *args: stand_in(name).__new__(stand_in(name), *args)


def _reconstructor(cls, base, state=None):
    """``copyreg._reconstructor`` (pickle protocols 0 and 1) for stand-ins only: an empty holder, no code."""
    if not (isinstance(cls, type) and issubclass(cls, Inert)):
        raise Refused(f"copyreg._reconstructor of {getattr(cls, '__name__', cls)}")
    return cls.__new__(cls)


def _newobj(cls, *args):
    if not (isinstance(cls, type) and issubclass(cls, Inert)):
        raise Refused(f"copyreg.__newobj__ of {getattr(cls, '__name__', cls)}")
    return cls.__new__(cls, *args)


def _rebuild_from_type_v2(func, new_type, args, state):
    """Tensors saved through ``Tensor.__reduce_ex__`` with a type: rebuild the plain tensor, keep no foreign type."""
    return func(*args)


def _allowed() -> dict[str, Any]:
    """Callables a checkpoint may use, by the name the pickle gives: torch's own tensor rebuilders and types, plain
    containers, and inert makers for data-only values. Everything here is data in, data out."""
    table: dict[str, Any] = {}
    try:  # the set torch itself trusts for weights_only loading (rebuild functions, storages, dtypes, Size)
        from torch._weights_only_unpickler import _get_allowed_globals

        table.update(_get_allowed_globals())
    except ImportError:  # pragma: no cover - older torch: the explicit list below suffices for checkpoints
        pass
    for name in ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_tensor"):
        if hasattr(torch._utils, name):
            table[f"torch._utils.{name}"] = getattr(torch._utils, name)
    table.update({
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.slice": slice,
        "builtins.complex": complex,
        "builtins.range": range,
        "copyreg._reconstructor": _reconstructor,
        "copyreg.__newobj__": _newobj,
    })
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
                  torch.uint8, torch.int8, torch.bool):
        table[str(dtype)] = dtype
    for numpy in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for fn in ("scalar", "_reconstruct"):
            table[f"{numpy}.{fn}"] = _inert_value(f"{numpy}.{fn}")
    table["numpy.dtype"] = _inert_value("numpy.dtype")
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves names from the allowlist, system modules to a refusal, and every other name to a stand-in."""

    _table: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # protocol 2 writes Python 2 names (__builtin__.set)
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full in self._table:
            return self._table[full]
        if module.split(".")[0] in SYSTEM_MODULES or module in SYSTEM_MODULES:
            raise Refused(full)
        return stand_in(full)


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` needs: torch's zip reader (storages, map_location) around our
    ``find_class``."""

    Unpickler = _RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    __name__ = "yoloswap.foreign_pickle"

    @staticmethod
    def load(*args, **kwargs):  # torch reads the legacy magic number with it; zip files never get here
        raise CheckpointError("not a zip-format torch file")


def read_foreign(path: Path) -> Any:
    """The object in the zip-format ``torch.save`` file ``path``, with every class as an :class:`Inert` holder.

    Raises :class:`CheckpointError` (one line) for a file that is not a zip-format torch file and for a pickle
    that asks to call code or names a system module.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"checkpoint {path} is not a zip-format torch file; only those are read as foreign "
                              "YOLO checkpoints (re-save it with a recent torch.save)")
    _RestrictedUnpickler._table = _RestrictedUnpickler._table or _allowed()
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PickleModule)
    except Refused as e:
        raise CheckpointError(f"checkpoint {path} would need arbitrary unpickling (it calls {e.what}), which "
                              "yoloswap refuses for safety: a model file only holds tensors and attributes") from None
    except CheckpointError:
        raise
    except Exception as e:  # a malformed archive or pickle: torch and pickle raise many types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a model file ({first})") from None


def is_inert(obj: Any, suffix: str = "") -> bool:
    """Whether ``obj`` stands in for a class whose dotted name ends with ``suffix``."""
    return isinstance(obj, Inert) and obj.class_name.endswith(suffix)


def module_tensors(module: Inert, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """The ``state_dict`` an ``nn.Module`` stand-in would have: parameters, persistent buffers, then children,
    walked from the ``_parameters``/``_buffers``/``_modules`` attributes its pickle held."""
    attrs = module.attrs
    for name, value in (attrs.get("_parameters") or {}).items():
        if isinstance(value, torch.Tensor):
            yield prefix + name, value.detach()
    skip = attrs.get("_non_persistent_buffers_set") or set()
    for name, value in (attrs.get("_buffers") or {}).items():
        if isinstance(value, torch.Tensor) and name not in skip:
            yield prefix + name, value
    for name, child in (attrs.get("_modules") or {}).items():
        if isinstance(child, Inert):
            yield from module_tensors(child, f"{prefix}{name}.")
