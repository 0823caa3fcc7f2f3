"""Model size figures: parameter count and GFLOPs, counted the way the published YOLOv5 tables count them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    """All parameters, trainable or frozen (buffers such as anchors excluded)."""
    return sum(p.numel() for p in module.parameters())


def count_gflops(module: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...],
                 call: Callable[..., object] | None = None) -> float:
    """GFLOPs of one forward pass (2 x multiply-adds, like the YOLOv5 tables; MMYOLO counts multiply-adds once).

    ``call`` replaces ``module(*inputs)`` when more than the forward runs at inference (a head's decode: the
    YOLOv8 head's DFL expectation is a matrix product, which Ultralytics' published figures include).

    Runs in eval mode without gradients, then restores each submodule's own training flag (a backbone may keep
    its norms frozen in eval mode). Works on the meta device, so large models can be measured without memory.
    """
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            (call or module)(*args)
    finally:
        for m, training in modes.items():
            m.training = training
    return counter.get_total_flops() / 1e9
