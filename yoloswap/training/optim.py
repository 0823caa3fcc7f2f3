"""The optimizer: parameter groups by weight-decay rule and by part (backbone or not), every parameter in one.

YOLOv5 decays only conv/linear weights and warms biases up from a higher learning rate, so parameters fall in three
kinds: ``decay`` (weights with ``ndim > 1``), ``bias`` and ``no_decay`` (norm weights, other 1-d tensors, and
anything named neither ``weight`` nor ``bias``: ConvNeXt's ``gamma``, Swin's ``relative_position_bias_table``,
layer scales, position embeddings). MMYOLO's grouping forgot that last set, which then never trained; here a
parameter either lands in exactly one group or is frozen (``requires_grad=False``) and lands in none.

Each kind is split once more into backbone and rest, so ``--backbone-lr-mult`` can slow the pretrained part down,
and the backbone once more by depth for ``--layer-decay R`` (BEiT's and the ConvNeXt detection recipe's layer-wise
decay): a parameter ``d`` stages below the top of the backbone trains at ``lr × R^d`` (top stage ``d = 1``, the stem
``d = 5``; neck and head ``d = 0``), so the early, generic features move least. Stages are the ones
:mod:`yoloswap.backbones.stages` groups for every library (stem + 4 stages), so ResNet, ConvNeXt and Swin decay
the same way. Groups carry ``initial_lr``, ``lr_mult``, ``kind`` and ``part`` (``backbone``/``detector``) for the
warmup and the scheduler to drive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from yoloswap.errors import ConfigError

KINDS = ("decay", "no_decay", "bias")
SHORT_RUN_STEPS = 10_000  # at most this many optimizer steps: AdamW learns more per step (Ultralytics' `auto`)


@dataclass(frozen=True)
class OptimizerChoice:
    """The optimizer a run trains with, resolved from ``--optimizer``/``--lr`` and the preset, and why."""

    name: str
    lr: float
    momentum: float  # SGD momentum, or AdamW's beta1
    reason: str

    @property
    def warmup_bias_lr(self) -> float:
        """YOLOv5 warms SGD biases down from 0.1; AdamW biases warm up from 0 like the other weights."""
        return 0.1 if self.name == "sgd" else 0.0


def optimizer_steps(images: int, batch_size: int, nominal_batch: int, epochs: int) -> int:
    """Optimizer steps of a run: one per nominal batch (or per batch, when that is larger), every epoch."""
    return math.ceil(images / max(batch_size, nominal_batch)) * epochs


def short_run_adamw_lr(num_classes: int) -> float:
    """Ultralytics' AdamW lr for short runs of CNN recipes: 0.002·5/(4 + classes), 0.001 at 6 classes."""
    return round(0.002 * 5 / (4 + num_classes), 6)


def choose_optimizer(requested: str, lr: float | None, preset_optimizer, num_classes: int, steps: int,
                     steps_note: str = "") -> OptimizerChoice:
    """``auto`` picks by run length; an explicit optimizer or lr always wins.

    - ``auto`` without ``--lr``: at most :data:`SHORT_RUN_STEPS` steps → AdamW (beta1 0.9, no bias warmup) at the
      preset's own lr when the preset already recommends AdamW, else at :func:`short_run_adamw_lr`; longer runs →
      the preset's recipe (SGD for the CNN presets).
    - ``auto`` with ``--lr``: the preset's optimizer at that lr (the recipe the lr was tuned for).
    - ``sgd``/``adamw``: that optimizer; lr and momentum from the preset when it recommends the same optimizer,
      else from the recipe ``auto`` would use for it.
    """
    preset_name = preset_optimizer.name
    if requested == "auto" and lr is None:
        if steps <= SHORT_RUN_STEPS:
            name, why = "adamw", f"auto: {steps:,} optimizer steps{steps_note} ≤ {SHORT_RUN_STEPS:,}, a short run"
        else:
            name, why = preset_name, f"auto: {steps:,} optimizer steps{steps_note} > {SHORT_RUN_STEPS:,}, " \
                                     "the preset's recipe"
    elif requested == "auto":
        name, why = preset_name, "--lr given: the preset's optimizer"
    else:
        name, why = requested, f"--optimizer {requested}"
    if name == preset_name:
        chosen_lr, momentum = preset_optimizer.lr, preset_optimizer.momentum
    elif name == "adamw":
        chosen_lr, momentum = short_run_adamw_lr(num_classes), 0.9
    else:
        chosen_lr, momentum = 0.01, 0.937  # YOLOv5's SGD recipe
    if lr is not None:
        chosen_lr = lr
        why += f", --lr {lr:g}"
    return OptimizerChoice(name, chosen_lr, momentum, why)


def param_kind(name: str, param: torch.Tensor) -> str:
    """``bias``, ``decay`` (a weight with ndim > 1: conv, linear, embedding) or ``no_decay`` (everything else)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "bias":
        return "bias"
    if leaf == "weight" and param.ndim > 1:
        return "decay"
    return "no_decay"


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    backbone_lr_mult: float = 1.0,
    backbone_prefix: str = "backbone.",
    layer_decay: float = 1.0,
) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW (betas ``(momentum, 0.999)``) over ``model``'s trainable parameters.

    Call it after freezing and before wrapping in DDP (a DDP-wrapped model is unwrapped here). Parameters whose
    name starts with ``backbone_prefix`` get ``lr * backbone_lr_mult * layer_decay ** depth`` (see
    :func:`backbone_depths`); empty groups are left out.
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    name = name.lower()
    if name not in ("sgd", "adamw"):
        raise ConfigError(f"optimizer '{name}' is not one of sgd, adamw")
    if lr <= 0:
        raise ConfigError(f"optimizer lr must be > 0, got {lr}")
    if backbone_lr_mult < 0:
        raise ConfigError(f"--backbone-lr-mult must be >= 0, got {backbone_lr_mult}")
    if weight_decay < 0:
        raise ConfigError(f"optimizer weight_decay must be >= 0, got {weight_decay}")
    if not 0 < layer_decay <= 1:
        raise ConfigError(f"--layer-decay must be in (0, 1], got {layer_decay}")

    depths = backbone_depths(model, backbone_prefix) if layer_decay != 1.0 else {}
    buckets: dict[tuple[int, str], list[nn.Parameter]] = {}  # (depth, kind); depth -1: not in the backbone
    for pname, param in model.named_parameters():  # shared parameters are listed once
        if param.requires_grad:
            depth = (depths.get(pname, 1) if depths else 0) if pname.startswith(backbone_prefix) else -1
            buckets.setdefault((depth, param_kind(pname, param)), []).append(param)

    groups = []
    for (depth, kind), params in sorted(buckets.items()):
        mult = 1.0 if depth < 0 else backbone_lr_mult * layer_decay ** depth
        part = "detector" if depth < 0 else "backbone"
        groups.append(
            {
                "params": params,
                "name": f"{part}{'' if depth <= 0 else f'.depth{depth}'}.{kind}",
                "kind": kind,
                "part": part,
                "lr": lr * mult,
                "initial_lr": lr * mult,
                "lr_mult": mult,
                "weight_decay": weight_decay if kind == "decay" else 0.0,
            }
        )
    if not groups:
        raise ConfigError("the model has no trainable parameters (is everything frozen?)")
    # One kernel per update for all parameters of a group (fused), instead of several per tensor: on CUDA, and on
    # the CPU, where the default is a Python loop over the tensors (bench/profile_step.py: 9% of a ConvNeXt-T step)
    devices = {p.device.type for g in groups for p in g["params"]}
    speed = {"fused": True} if devices in ({"cuda"}, {"cpu"}) else {"foreach": None}
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0, **speed)
    return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999), **speed)


def backbone_depths(model: nn.Module, backbone_prefix: str = "backbone.") -> dict[str, int]:
    """Depth from the top of every backbone parameter: stage 4 → 1, stage 3 → 2, ..., stem → 5 (the stages of
    :mod:`yoloswap.backbones.stages`); parameters after the last stage (final norms) → 1, like the top stage."""
    backbone = model.get_submodule(backbone_prefix.rstrip(".")) if backbone_prefix else model
    stages = getattr(backbone, "stages", None)
    if not stages:
        raise ConfigError("--layer-decay needs a backbone grouped in stages (a yoloswap FeatureBackbone)")
    depths = {}
    for index, names in enumerate(stages):  # 0 = stem ... 4 = stage 4
        for name in names:
            depths[f"{backbone_prefix}body.{name}"] = len(stages) - index
    return depths
