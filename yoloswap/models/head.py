"""The YOLOv5 detection head: one 1x1 conv per level, three anchors per cell.

The head only produces raw logits; decoding lives in ``yoloswap.ops`` and target assignment in
``yoloswap.losses``, so each can be tested and changed on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# COCO anchors in input pixels, (w, h), per level P3/8, P4/16, P5/32.
COCO_ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)


class YOLOv5Head(nn.Module):
    """Per level: (N, C, H, W) -> (N, na, H, W, 5 + nc) raw logits [x, y, w, h, obj, cls...]."""

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        strides: Sequence[int],
        anchors: Sequence[Sequence[Sequence[float]]] | torch.Tensor = COCO_ANCHORS,
    ) -> None:
        super().__init__()
        anchor_tensor = torch.as_tensor(anchors, dtype=torch.float32)  # (nl, na, 2) pixels
        if num_classes < 1:
            raise ValueError(f"YOLOv5Head num_classes must be >= 1, got {num_classes}")
        if anchor_tensor.ndim != 3 or anchor_tensor.shape[-1] != 2:
            raise ValueError(f"anchors must have shape (levels, anchors, 2), got {tuple(anchor_tensor.shape)}")
        if not len(in_channels) == len(strides) == anchor_tensor.shape[0]:
            raise ValueError(
                f"YOLOv5Head got {len(in_channels)} input widths, {len(strides)} strides and "
                f"{anchor_tensor.shape[0]} anchor levels; they must agree"
            )
        self.num_classes = int(num_classes)
        self.num_levels = anchor_tensor.shape[0]
        self.num_anchors = anchor_tensor.shape[1]
        self.num_outputs = 5 + self.num_classes
        self.stride_values: tuple[int, ...] = tuple(int(s) for s in strides)
        # Buffers, not parameters: they travel in checkpoints (AutoAnchor may change anchors) but are not trained.
        self.register_buffer("anchors", anchor_tensor)
        self.register_buffer("strides", torch.tensor(self.stride_values, dtype=torch.float32))
        self.convs = nn.ModuleList(nn.Conv2d(int(c), self.num_anchors * self.num_outputs, 1) for c in in_channels)
        self._init_biases()

    @torch.no_grad()
    def _init_biases(self) -> None:
        """Start objectness near "about 8 objects per 640x640 image" and classes near 0.6/nc, so early training
        is not swamped by the loss of thousands of confidently wrong background cells."""
        for conv, stride in zip(self.convs, self.stride_values):
            bias = conv.bias.view(self.num_anchors, self.num_outputs)  # (na, 5+nc)
            bias[:, 4] += math.log(8 / (640 / stride) ** 2)
            bias[:, 5:] += math.log(0.6 / (self.num_classes - 0.99999))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for conv, x in zip(self.convs, features):
            n, _, h, w = x.shape
            y = conv(x)  # (N, na*(5+nc), H, W)
            y = y.view(n, self.num_anchors, self.num_outputs, h, w).permute(0, 1, 3, 4, 2)
            outputs.append(y.contiguous())  # (N, na, H, W, 5+nc)
        return outputs
