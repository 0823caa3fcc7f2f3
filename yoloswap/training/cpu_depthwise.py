"""Depthwise convolutions in fp32 when the rest of a CPU step runs in bf16.

Measured on this project's CPU (bench/RESULTS.md §12, ``bench/profile_step.py``): under bf16 autocast, oneDNN's
backward of a depthwise 7×7 convolution (ConvNeXt's token mixer) costs 10-30× its forward and about twice its own
fp32 backward, so on the ConvNeXt-T detector at 160 px the 18 depthwise convolutions were the largest single item
of the step. In fp32 they cost 23% less CPU time per step, and a depthwise convolution is a small share of the
FLOPs, so nothing else gets slower; the result is also more precise than bf16, never less.

The swap changes the class of the chosen ``nn.Conv2d`` modules to :class:`Fp32DepthwiseConv2d`, a subclass whose
forward only leaves autocast: parameter names, ``state_dict``, checkpoints and ``deepcopy`` (EMA) are untouched,
and a checkpoint loads into a model with or without the swap.
"""

from __future__ import annotations

import torch
from torch import nn


class Fp32DepthwiseConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that runs in fp32 inside a CPU autocast region (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float())


def is_depthwise(module: nn.Module) -> bool:
    """A plain ``nn.Conv2d`` with one group per channel and a kernel larger than 1×1."""
    return (type(module) is nn.Conv2d and module.groups > 1 and module.groups == module.in_channels
            == module.out_channels and max(module.kernel_size) > 1)


def depthwise_in_fp32(model: nn.Module) -> int:
    """Run every depthwise convolution of ``model`` in fp32 under CPU autocast; returns how many there are."""
    found = [m for m in model.modules() if is_depthwise(m)]
    for m in found:
        m.__class__ = Fp32DepthwiseConv2d
    return len(found)
