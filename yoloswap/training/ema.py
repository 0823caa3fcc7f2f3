"""Exponential moving average of the model's weights, as YOLOv5 keeps it (evaluation uses the EMA)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """``ema = d·ema + (1 − d)·model`` with ``d = decay·(1 − exp(−updates / tau))``: a short memory early on,
    when the weights move fast, growing to ``decay``. Buffers (BatchNorm statistics) are averaged too."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval()
        self.decay = decay
        self.tau = tau
        self.updates = updates
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step: one ``torch._foreach_lerp_`` over all float tensors (``ema + (1 − d)·(model − ema)``:
        one pass over the weights, not a multiply and an add), integer buffers copied. Never reads a value back to
        the host."""
        self.updates += 1
        d = self.current_decay()
        source = unwrap(model).state_dict()
        mine, theirs = [], []
        for key, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                mine.append(value)
                theirs.append(source[key].detach())
            else:
                value.copy_(source[key])
        if mine:
            torch._foreach_lerp_(mine, theirs, 1 - d)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside torch.compile's and DistributedDataParallel's wrappers (either, both or none)."""
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP
