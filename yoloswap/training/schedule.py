"""Learning rate, momentum and gradient accumulation over training: YOLOv5's warmup, then linear or cosine decay to
``lrf``·lr.

Pure functions of (iteration, epoch) so that a resumed run lands on exactly the same values: a run resumed
between epochs of ``--freeze-backbone-epochs`` finds its backbone frozen or unfrozen just as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    epochs: int
    iters_per_epoch: int
    lrf: float = 0.01
    cosine: bool = False
    warmup_epochs: float = 3.0
    min_warmup_iters: int = 100
    warmup_bias_lr: float = 0.1
    warmup_momentum: float = 0.8
    momentum: float = 0.937
    accumulate: float = 1.0  # nominal batch / batch: batches per optimizer step once warmup is over
    freeze_backbone_epochs: int = 0  # backbone groups (``part == "backbone"``) get no gradients before this epoch

    @property
    def warmup_iters(self) -> int:
        """max(warmup epochs, ``min_warmup_iters``) iterations, but never more than half the run."""
        total = self.epochs * self.iters_per_epoch
        want = max(round(self.warmup_epochs * self.iters_per_epoch), self.min_warmup_iters)
        return min(want, total // 2) if self.warmup_epochs > 0 else 0

    def factor(self, epoch: int) -> float:
        """Decay factor of the base lr at the start of ``epoch``."""
        x = epoch / max(self.epochs, 1)
        if self.cosine:
            return ((1 - math.cos(x * math.pi)) / 2) * (self.lrf - 1) + 1
        return (1 - x) * (1.0 - self.lrf) + self.lrf

    def accumulate_at(self, iteration: int) -> int:
        """Batches per optimizer step at global ``iteration``: from 1 up to ``accumulate`` during warmup (small,
        frequent steps while the weights move fast, as YOLOv5's train.py), then ``round(accumulate)``."""
        nw = self.warmup_iters
        target = self.accumulate if iteration >= nw else float(np.interp(iteration, [0, nw], [1.0, self.accumulate]))
        return max(1, round(target))

    def apply(self, optimizer, iteration: int, epoch: int) -> None:
        """Set every group's lr (and momentum during warmup) for global ``iteration`` in ``epoch``."""
        base = self.factor(epoch)
        nw = self.warmup_iters
        for group in optimizer.param_groups:
            target = group["initial_lr"] * base
            if iteration < nw:
                start = self.warmup_bias_lr * group.get("lr_mult", 1.0) if group.get("kind") == "bias" else 0.0
                group["lr"] = float(np.interp(iteration, [0, nw], [start, target]))
                if "momentum" in group:
                    group["momentum"] = float(np.interp(iteration, [0, nw], [self.warmup_momentum, self.momentum]))
                elif "betas" in group:
                    beta1 = float(np.interp(iteration, [0, nw], [self.warmup_momentum, self.momentum]))
                    group["betas"] = (beta1, group["betas"][1])
            else:
                group["lr"] = target
                if "momentum" in group:
                    group["momentum"] = self.momentum
                elif "betas" in group:
                    group["betas"] = (self.momentum, group["betas"][1])
            if group.get("part") == "backbone" and self.freeze_backbone_epochs > 0:
                self._freeze_or_warm(group, iteration, epoch, target)

    def _freeze_or_warm(self, group: dict, iteration: int, epoch: int, target: float) -> None:
        """``--freeze-backbone-epochs N``: before epoch N the group's parameters take no gradients (so the
        optimizer skips them: no update, no momentum, no weight decay); from epoch N they train again, their lr
        rising from 0 over a warmup of their own (the run's warmup length), while the rest of the detector is
        already past its warmup."""
        frozen = epoch < self.freeze_backbone_epochs
        for param in group["params"]:
            if param.requires_grad == frozen:
                param.requires_grad_(not frozen)
                param.grad = None
        if frozen:
            group["lr"] = 0.0
            return
        start = self.freeze_backbone_epochs * self.iters_per_epoch
        nw = max(self.warmup_iters, 1)
        if iteration < start + nw:
            group["lr"] = float(np.interp(iteration, [start, start + nw], [0.0, target]))
