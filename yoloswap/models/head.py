"""The head interface every detection head implements, and the YOLOv5 head (one 1x1 conv per level, three
anchors per cell).

A head turns the neck's three maps into raw outputs whose layout only the head and its loss know. Everything
else (trainer, validation, predict, export) talks to it through :class:`DetectionHead`: ``decode`` to the
head-independent detection rows, ``make_loss`` for the criterion, whose ``names`` become the metrics columns.
A new head is a head module, a loss module and one line in ``assembly.HEADS``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from yoloswap import ops


class HeadLoss(Protocol):
    """``total, items = loss(raw_outputs, targets)``; targets (M, 6) [image, cls, cx, cy, w, h] in input pixels.

    ``total`` is ready for ``backward()``; ``items`` is a detached 1-d tensor, one value per entry of ``names``
    (logged as ``train/<name>_loss`` and ``val/<name>_loss``).
    """

    names: tuple[str, ...]

    def __call__(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ...


class DetectionHead(Protocol):
    """What the rest of yoloswap may ask of a head (an ``nn.Module``)."""

    name: str  # the key in assembly.HEADS, recorded in the plan
    num_classes: int
    stride_values: tuple[int, ...]

    def __call__(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Neck maps (N, C_i, H_i, W_i) -> raw outputs, one per level (opaque outside the head and its loss)."""
        ...

    def decode(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Raw outputs -> (N, P, 4 + nc) float32 rows [x1, y1, x2, y2 (input pixels), class scores in [0, 1]...]."""
        ...

    def make_loss(self, img_size: int) -> HeadLoss:
        """The criterion that trains this head at training size ``img_size``."""
        ...

# COCO anchors in input pixels, (w, h), per level P3/8, P4/16, P5/32.
COCO_ANCHORS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)


class YOLOv5Head(nn.Module):
    """Per level: (N, C, H, W) -> (N, na, H, W, 5 + nc) raw logits [x, y, w, h, obj, cls...].

    Decoding uses ``ops.decode`` (score = objectness x class); the loss is ``losses.YOLOv5Loss``; the anchors
    (pixels, small ones on stride 8) are a buffer that AutoAnchor may rewrite before training.
    """

    name = "yolov5"

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

    def decode(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        decoded = ops.decode(outputs, self.anchors, self.stride_values)  # (N, P, 5+nc) cx, cy, w, h, obj, cls
        boxes = ops.xywh2xyxy(decoded[..., :4])
        return torch.cat((boxes, decoded[..., 5:] * decoded[..., 4:5]), dim=-1)  # (N, P, 4+nc)

    def make_loss(self, img_size: int):
        from yoloswap.losses import YOLOv5Loss

        # The loss holds the anchors buffer by reference, so anchors rewritten in place are seen by it.
        return YOLOv5Loss(self.num_classes, self.anchors, self.stride_values, img_size=img_size)
