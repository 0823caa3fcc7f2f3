"""Activation and BatchNorm settings as data: one table from a name to an activation, one small norm record.

Why a table: presets and ``--act`` say ``relu`` or ``hardswish`` (int8 and NPU toolchains favour ReLU/ReLU6 over
SiLU), and every own block builds its activation through :func:`make_act`, so one name reaches every layer.
Module replacement for models built elsewhere (timm without ``act_layer``, the neck and head) uses the same
table (``yoloswap.models.overrides``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from yoloswap.errors import ConfigError, suggestion

# name -> zero-argument constructor; LeakyReLU's slope 0.1 is the Darknet/YOLO convention.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "gelu": lambda: nn.GELU(),
    "leakyrelu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "mish": lambda: nn.Mish(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
}
# The module type each name builds (to find and replace them, and to name what a model uses).
ACTIVATION_TYPES: dict[str, type[nn.Module]] = {name: type(make()) for name, make in ACTIVATIONS.items()}


def check_act(name: str, where: str = "act") -> str:
    """``name`` when the table knows it, else a :class:`ConfigError` naming the field and the closest name."""
    if name not in ACTIVATIONS:
        raise ConfigError(
            f"{where}: unknown activation '{name}' (known: {', '.join(ACTIVATIONS)}){suggestion(name, ACTIVATIONS)}"
        )
    return name


def make_act(name: str) -> nn.Module:
    return ACTIVATIONS[check_act(name)]()


@dataclass(frozen=True)
class NormSpec:
    """BatchNorm settings. The YOLO families override PyTorch's (momentum 0.1, eps 1e-5) with these."""

    momentum: float = 0.03
    eps: float = 1e-3


def make_bn(channels: int, norm: NormSpec) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=norm.eps, momentum=norm.momentum)


def act_names_in(model: nn.Module) -> list[str]:
    """Names (from the table) of the activation types ``model`` contains, in order of first appearance."""
    by_type = {t: n for n, t in ACTIVATION_TYPES.items()}
    seen: list[str] = []
    for module in model.modules():
        name = by_type.get(type(module))
        if name and name not in seen:
            seen.append(name)
    return seen
