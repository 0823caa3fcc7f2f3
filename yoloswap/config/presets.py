"""Backbone presets: what a person decides about a backbone, never what it measures.

A preset is one YAML file (``presets/<name>.yaml``) read with ``yaml.safe_load`` into frozen dataclasses.
It names the model and where its weights come from, how to freeze and regularise it, how its inputs are
normalised and which optimizer suits the family. It never stores channels: the probe measures those.

``yoloswap.backbones.resolve.resolve_backbone`` turns what a user types after ``--backbone`` into a
:class:`Preset`; it checks ``model.source`` against the table of sources, which lives with the backbones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from yoloswap.errors import ConfigError, suggestion

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class ModelSpec:
    """Which network to build: ``source`` library, its model ``name``, optional explicit feature ``layers``.

    ``layers`` names the modules whose outputs are the stride-8/16/32 features, for the rare model where the
    last block of each stride is not the right tap (MobileNetV3-S ends with a 1×1 expansion conv). Without it
    the levels are chosen by measured stride.
    """

    source: str
    name: str
    layers: tuple[str, ...] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Normalize:
    """Mean/std (0–1 scale) the backbone's weights were trained with; images are normalised with these."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer recipe that suits the family (SGD for CNNs, AdamW with a lower lr for transformers)."""

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class NeckSpec:
    """YOLOv5 PAFPN settings: C3 depth multiplier and width (a multiplier of the probed channels, or a list)."""

    depth: float = 0.33
    width: float | tuple[int, int, int] = 1.0


@dataclass(frozen=True)
class NormOverride:
    """BatchNorm settings to impose (``norm: {momentum: 0.03, eps: 0.001}``); a field left out keeps the model's."""

    momentum: float | None = None
    eps: float | None = None


ACT_SCOPES = ("backbone", "all")  # where ``act``/``norm`` apply: the backbone, or backbone, neck and head


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    description: str
    model: ModelSpec
    weights: str = "none"
    frozen_stages: int = 0
    norm_eval: bool = False
    drop_path_rate: float = 0.0
    normalize: Normalize = Normalize()
    optimizer: OptimizerSpec = OptimizerSpec()
    neck: NeckSpec = NeckSpec()
    head: str = "yolov5"  # yolov5 (anchor-based) or yolov8 (anchor-free); checked against assembly.HEADS
    # Activation by name (models/activations.py ACTIVATIONS: relu, relu6, silu, hardswish, gelu, leakyrelu, ...),
    # BatchNorm settings, and whether they reach neck and head too; None: the model's own.
    act: str | None = None
    norm: NormOverride | None = None
    act_scope: str = "backbone"
    path: str | None = None  # where it was read from (not a YAML key)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for run configs and checkpoints); ``preset_from_dict`` reads it back."""
        data = dataclasses.asdict(self)
        data.pop("path")
        return _plain(data)


# ----------------------------------------------------------------------------------------------------------
# Where presets live


def presets_dir() -> Path:
    """The shipped presets: ``yoloswap/presets`` inside the installed package, else the repo's ``presets/``."""
    packaged = resources.files("yoloswap") / "presets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def load_presets() -> list[Preset]:
    return [load_preset_file(presets_dir() / f"{n}.yaml") for n in preset_names()]


# ----------------------------------------------------------------------------------------------------------
# Reading and validating


def load_preset_file(path: Path) -> Preset:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: preset file not found")
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of fields, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    return preset_from_dict(data, origin=str(path))


def preset_from_dict(data: dict[str, Any], origin: str = "<preset>") -> Preset:
    preset = _build(Preset, data, origin, prefix="")
    preset = dataclasses.replace(preset, path=origin if origin != "<preset>" else None)
    _validate(preset, origin)
    return preset


def _validate(p: Preset, origin: str) -> None:
    def bad(fieldname: str, why: str) -> ConfigError:
        return ConfigError(f"{origin}: field '{fieldname}': {why}")

    if p.model.layers is not None and len(p.model.layers) != 3:
        raise bad("model.layers", f"needs exactly 3 module names (strides 8, 16, 32), got {len(p.model.layers)}")
    if p.optimizer.name not in OPTIMIZERS:
        raise bad("optimizer.name", f"'{p.optimizer.name}' is not one of {', '.join(OPTIMIZERS)}")
    if p.optimizer.lr <= 0:
        raise bad("optimizer.lr", f"must be > 0, got {p.optimizer.lr}")
    if p.frozen_stages < -1 or p.frozen_stages > 4:
        raise bad("frozen_stages", f"must be in [-1, 4] (-1/0: nothing frozen), got {p.frozen_stages}")
    if not 0.0 <= p.drop_path_rate < 1.0:
        raise bad("drop_path_rate", f"must be in [0, 1), got {p.drop_path_rate}")
    for key in ("mean", "std"):
        values = getattr(p.normalize, key)
        if len(values) != 3:
            raise bad(f"normalize.{key}", f"needs 3 values (R, G, B), got {len(values)}")
    if any(s <= 0 for s in p.normalize.std):
        raise bad("normalize.std", "values must be > 0")
    width = p.neck.width
    if isinstance(width, tuple):
        if len(width) != 3 or any(w <= 0 for w in width):
            raise bad("neck.width", f"a list needs 3 positive channel counts, got {list(width)}")
    elif width <= 0:
        raise bad("neck.width", f"must be > 0, got {width}")
    if p.neck.depth <= 0:
        raise bad("neck.depth", f"must be > 0, got {p.neck.depth}")
    if p.act_scope not in ACT_SCOPES:
        raise bad("act_scope", f"'{p.act_scope}' is not one of {', '.join(ACT_SCOPES)}")
    if p.norm is not None:
        if p.norm.momentum is not None and not 0.0 <= p.norm.momentum <= 1.0:
            raise bad("norm.momentum", f"must be in [0, 1], got {p.norm.momentum}")
        if p.norm.eps is not None and not p.norm.eps > 0:
            raise bad("norm.eps", f"must be > 0, got {p.norm.eps}")


def _build(cls: type, data: Any, origin: str, prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys (with a suggestion) and wrong types."""
    where = prefix.rstrip(".") or "(top level)"
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: field '{where}': expected a mapping, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = str(unknown[0])
        raise ConfigError(f"{origin}: unknown field '{prefix}{key}'{suggestion(key, fields)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{origin}: missing required field '{prefix}{missing[0]}'")
    values = {k: _convert(hints[k], v, origin, f"{prefix}{k}") for k, v in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, origin: str, name: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, origin, name + ".")
    origin_type = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin_type in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, origin, name)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1]
    if origin_type is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{origin}: field '{name}': expected a list, got {_kind(value)}")
        item = args[0] if args else Any
        if len(args) > 1 and args[1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(f"{origin}: field '{name}': expected {len(args)} values, got {len(value)}")
        return tuple(_convert(item, v, origin, f"{name}[{i}]") for i, v in enumerate(value))
    if origin_type is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: field '{name}': expected a mapping, got {_kind(value)}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is str and value is None:
        raise ConfigError(f"{origin}: field '{name}': expected a string, got nothing")
    raise ConfigError(f"{origin}: field '{name}': expected {getattr(hint, '__name__', hint)}, got {_kind(value)}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:60]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
