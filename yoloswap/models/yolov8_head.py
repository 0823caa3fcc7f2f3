"""The anchor-free YOLOv8 head, as Ultralytics puts it on YOLOv5 ("YOLOv5u"): decoupled box and class branches.

Per level two branches, each two 3x3 Conv-BN-SiLU then a 1x1 conv: the box branch predicts four distances from
the cell centre (left, top, right, bottom) as distributions over ``reg_max`` bins (DFL), the class branch one logit
per class; there is no objectness. Branch widths follow the stride-8 input width ``c``: box ``max(16, c/4,
4*reg_max)``, class ``max(c, min(nc, 100))``, so it matches Ultralytics' parameter count exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from yoloswap import ops
from yoloswap.losses.yolov8 import REG_MAX, split_outputs
from yoloswap.models.blocks import Conv


def _branch(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(Conv(c_in, hidden, 3), Conv(hidden, hidden, 3), nn.Conv2d(hidden, c_out, 1))


class YOLOv8Head(nn.Module):
    """Per level: (N, C, H, W) -> (N, 4*reg_max + nc, H, W) raw logits [distance bins (l, t, r, b), classes]."""

    name = "yolov8"

    def __init__(self, in_channels: Sequence[int], num_classes: int, strides: Sequence[int],
                 reg_max: int = REG_MAX) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"YOLOv8Head num_classes must be >= 1, got {num_classes}")
        if len(in_channels) != len(strides):
            raise ValueError(
                f"YOLOv8Head got {len(in_channels)} input widths and {len(strides)} strides; they must agree"
            )
        self.num_classes = int(num_classes)
        self.reg_max = int(reg_max)
        self.stride_values: tuple[int, ...] = tuple(int(s) for s in strides)
        first = int(in_channels[0])
        box_width = max(16, first // 4, 4 * self.reg_max)
        cls_width = max(first, min(self.num_classes, 100))
        self.box_branches = nn.ModuleList(_branch(int(c), box_width, 4 * self.reg_max) for c in in_channels)
        self.cls_branches = nn.ModuleList(_branch(int(c), cls_width, self.num_classes) for c in in_channels)
        # The bin values the expectation is taken over. A frozen parameter, not a buffer, because Ultralytics
        # counts its DFL conv (16 weights) as parameters and the published sizes include it.
        self.dfl_bins = nn.Parameter(torch.arange(self.reg_max, dtype=torch.float32), requires_grad=False)
        self._init_biases()

    @torch.no_grad()
    def _init_biases(self) -> None:
        """Box logits start flat (bias 1.0); class probabilities near "5 objects of a class per 640x640 image"
        spread over the level's cells, so early training is not swamped by confident background."""
        for box, cls, stride in zip(self.box_branches, self.cls_branches, self.stride_values):
            box[-1].bias.fill_(1.0)
            cls[-1].bias.fill_(math.log(5 / self.num_classes / (640 / stride) ** 2))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.cat((box(x), cls(x)), dim=1)  # (N, 4*reg_max + nc, H, W)
                for box, cls, x in zip(self.box_branches, self.cls_branches, features)]

    def decode(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        outputs = [o.float() for o in outputs]
        dist_logits, cls_logits = split_outputs(outputs, self.num_classes, self.reg_max)  # (N,A,4,R), (N,A,nc)
        points, strides = ops.make_anchor_points([o.shape[2:] for o in outputs], self.stride_values,
                                                 outputs[0].device)  # (A, 2) grid units, (A, 1)
        bins = self.dfl_bins.to(dist_logits.dtype).view(-1, 1)  # (R, 1): a matrix product, as a 1x1 conv would be
        distances = (dist_logits.softmax(dim=-1) @ bins).squeeze(-1)  # (N, A, 4) expected distances
        boxes = ops.dist2bbox(distances, points) * strides  # (N, A, 4) xyxy pixels
        return torch.cat((boxes, cls_logits.sigmoid()), dim=-1)  # (N, A, 4+nc)

    def make_loss(self, img_size: int):
        from yoloswap.losses.yolov8 import YOLOv8Loss

        return YOLOv8Loss(self.num_classes, self.stride_values, self.reg_max)
