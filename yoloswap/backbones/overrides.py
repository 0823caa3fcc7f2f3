"""Activation and BatchNorm overrides (a preset's ``act``/``norm``/``act_scope``, ``--act``, ``--norm-*``).

Three ways in, most faithful first: yoloswap's own YOLO-family backbones take ``act``/``norm`` at construction;
timm models take timm's ``act_layer`` where their constructor accepts it; anything else (CSPDarknet, torchvision,
a timm model without ``act_layer``, the neck and the head under ``act_scope: all``) has its activation modules
replaced in place after construction. Whatever the way, :func:`apply_act` then replaces any activation module of a
known type that is still different (timm's stems and SE gates may keep a hard-coded one) and BatchNorm momentum
and eps are set on every BatchNorm. A model where nothing could change says so in one line (:attr:`notes`).

Gates are not layer activations and are left alone: sigmoid/hard-sigmoid in SE and channel attention blocks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from yoloswap.models.activations import ACTIVATION_TYPES, ACTIVATIONS, NormSpec, act_names_in, check_act

if TYPE_CHECKING:
    from yoloswap.config.presets import Preset

# yoloswap's own act names -> timm's act_layer names (timm.layers.create_act)
TIMM_ACT_NAMES = {
    "relu": "relu", "relu6": "relu6", "silu": "silu", "hardswish": "hard_swish", "gelu": "gelu",
    "leakyrelu": "leaky_relu", "mish": "mish", "elu": "elu",
}  # fmt: skip


def construction_kwargs(preset: "Preset", accepts: Callable) -> dict:
    """Keyword arguments that set the preset's act/norm when the model is built, for constructors that take them.

    ``accepts`` is the model class (own backbones); timm models are asked through ``act_layer`` by the caller.
    """
    params = inspect.signature(accepts).parameters
    kwargs = {}
    if preset.act and "act" in params:
        kwargs["act"] = check_act(preset.act, "act")
    if preset.norm is not None and "norm" in params:
        base = params["norm"].default if params["norm"].default is not inspect.Parameter.empty else NormSpec()
        kwargs["norm"] = NormSpec(
            momentum=base.momentum if preset.norm.momentum is None else preset.norm.momentum,
            eps=base.eps if preset.norm.eps is None else preset.norm.eps,
        )
    return kwargs


def apply_act(model: nn.Module, act: str) -> int:
    """Replace every activation module of a known type other than ``act`` by a fresh ``act``; returns how many."""
    target = ACTIVATION_TYPES[check_act(act)]
    known = set(ACTIVATION_TYPES.values()) - {target}
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in known:  # exact types: a library's subclass may carry its own meaning
                setattr(parent, name, ACTIVATIONS[act]())
                replaced += 1
    return replaced


def apply_norm(model: nn.Module, momentum: float | None, eps: float | None) -> int:
    """Set momentum and eps on every BatchNorm of ``model``; returns how many BatchNorms there were."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if momentum is not None:
                module.momentum = momentum
            if eps is not None:
                module.eps = eps
            count += 1
    return count


def override_part(model: nn.Module, preset: "Preset", label: str) -> list[str]:
    """Apply the preset's act/norm to ``model`` after construction; the lines that say what could not apply."""
    notes = []
    if preset.act:
        apply_act(model, preset.act)
        if act_names_in(model) != [preset.act]:
            found = ", ".join(act_names_in(model)) or "no activation modules"
            notes.append(f"act: {label} keeps {found}; '{preset.act}' could not replace them all")
    if preset.norm is not None and not apply_norm(model, preset.norm.momentum, preset.norm.eps):
        notes.append(f"norm: {label} has no BatchNorm layers, so momentum/eps do not apply")
    return notes


def timm_act_kwargs(preset: "Preset") -> dict:
    """timm's ``act_layer`` for the preset's act (empty without one)."""
    return {"act_layer": TIMM_ACT_NAMES[check_act(preset.act, "act")]} if preset.act else {}


def has_overrides(preset: "Preset") -> bool:
    return bool(preset.act) or preset.norm is not None
