"""The inference form of a detector: re-parameterisable blocks fused, on a copy.

RepVGG-style blocks (yoloswap's own in YOLOv6 EfficientRep; timm's RepVGG, MobileOne, FastViT, RepViT, RepGhost)
train with parallel branches and run, after fusion, as one conv: the same function, a fraction of the memory
traffic. Export, predict, val, benchmark and compare all run :func:`reparameterized`; training never does, and the
model handed in is never changed, so checkpoints keep their trainable branches.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from yoloswap.models.yolo_blocks import RepVGGBlock


def _fold_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` for a bias-free conv with ``kernel`` (BN in eval: running statistics)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    return kernel * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


@torch.no_grad()
def fuse_repvgg(block: RepVGGBlock) -> None:
    """Replace ``block``'s branches by one 3x3 conv with bias: each branch's BN folded into its kernel, the 1x1
    kernel zero-padded to 3x3, the identity as a centred one-hot 3x3 kernel, all summed before the activation."""
    dense = block.rbr_dense
    k3, b3 = _fold_bn(dense.conv.weight, dense.bn)
    k1, b1 = _fold_bn(F.pad(block.rbr_1x1.conv.weight, [1, 1, 1, 1]), block.rbr_1x1.bn)
    kernel, bias = k3 + k1, b3 + b1
    if block.rbr_identity is not None:
        channels = dense.conv.in_channels
        one_hot = torch.zeros_like(k3)
        one_hot[torch.arange(channels), torch.arange(channels), 1, 1] = 1.0  # (C, C, 3, 3): x -> x
        ki, bi = _fold_bn(one_hot, block.rbr_identity)
        kernel, bias = kernel + ki, bias + bi
    conv = dense.conv
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, 1, bias=True, device=kernel.device,
                      dtype=kernel.dtype)
    fused.weight.copy_(kernel)
    fused.bias.copy_(bias)
    del block.rbr_dense, block.rbr_1x1
    block.rbr_identity = None
    block.fused = fused


def reparameterized(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every re-parameterisable block fused; ``model`` is left as it was."""
    fused = copy.deepcopy(model).eval()
    for module in list(fused.modules()):
        if isinstance(module, RepVGGBlock) and module.fused is None:
            fuse_repvgg(module)
    if _has_timm_reparam(fused):
        from timm.utils import reparameterize_model

        fused = reparameterize_model(fused, inplace=True)
    return fused


def _has_timm_reparam(model: nn.Module) -> bool:
    """Whether any child knows timm's re-parameterisation protocol (``fuse``/``reparameterize``/``switch_to_deploy``)."""
    return any(
        type(m).__module__.startswith("timm.") and any(hasattr(m, a) for a in ("fuse", "reparameterize", "switch_to_deploy"))
        for m in model.modules()
    )
