"""The optimizer: parameter groups by weight-decay rule and by part (backbone or not), every parameter in one.

YOLOv5 decays only conv/linear weights and warms biases up from a higher learning rate, so parameters fall in three
kinds: ``decay`` (weights with ``ndim > 1``), ``bias`` and ``no_decay`` (norm weights, other 1-d tensors, and
anything named neither ``weight`` nor ``bias``: ConvNeXt's ``gamma``, Swin's ``relative_position_bias_table``,
layer scales, position embeddings). MMYOLO's grouping forgot that last set, which then never trained; here a
parameter either lands in exactly one group or is frozen (``requires_grad=False``) and lands in none.

Each kind is split once more into backbone and rest, so ``--backbone-lr-mult`` can slow the pretrained part down.
Groups carry ``initial_lr``, ``lr_mult`` and ``kind`` for the warmup and the scheduler to drive.
"""

from __future__ import annotations

import torch
from torch import nn

from yoloswap.errors import ConfigError

KINDS = ("decay", "no_decay", "bias")


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
) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW (betas ``(momentum, 0.999)``) over ``model``'s trainable parameters.

    Call it after freezing and before wrapping in DDP (a DDP-wrapped model is unwrapped here). Parameters whose
    name starts with ``backbone_prefix`` get ``lr * backbone_lr_mult``; empty groups are left out.
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

    buckets: dict[tuple[bool, str], list[nn.Parameter]] = {(b, k): [] for b in (True, False) for k in KINDS}
    for pname, param in model.named_parameters():  # shared parameters are listed once
        if param.requires_grad:
            buckets[(pname.startswith(backbone_prefix), param_kind(pname, param))].append(param)

    groups = []
    for (in_backbone, kind), params in buckets.items():
        if not params:
            continue
        mult = backbone_lr_mult if in_backbone else 1.0
        groups.append(
            {
                "params": params,
                "name": f"{'backbone' if in_backbone else 'detector'}.{kind}",
                "kind": kind,
                "lr": lr * mult,
                "initial_lr": lr * mult,
                "lr_mult": mult,
                "weight_decay": weight_decay if kind == "decay" else 0.0,
            }
        )
    if not groups:
        raise ConfigError("the model has no trainable parameters (is everything frozen?)")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
