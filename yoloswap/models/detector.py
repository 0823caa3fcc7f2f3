"""The detector: normalise, backbone, neck, head. Parts are built elsewhere and passed in."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from yoloswap import ops
from yoloswap.models.head import DetectionHead


class Detector(nn.Module):
    """Takes RGB images in [0, 1] (N, 3, H, W) and returns the head's raw outputs, one per level.

    The head is any :class:`~yoloswap.models.head.DetectionHead`; :meth:`infer` and :meth:`predict` go through
    its ``decode``, so they mean the same for every head.

    Normalisation lives inside the model so every backbone gets the mean/std it was pretrained with (the seed
    scaled all inputs by 1/255 only); data pipelines just produce [0, 1] images.
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: DetectionHead,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={list(mean)} std={list(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be > 0, got {list(std)}")
        self.backbone = backbone
        self.neck = neck
        self.head = head
        # Not persistent: they come from the configuration, which travels with checkpoints anyway.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def strides(self) -> tuple[int, ...]:
        return self.head.stride_values

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)  # (N, 3, H, W)
        features = self.backbone(x)  # 3 x (N, C_i, H/s_i, W/s_i)
        features = self.neck(features)  # 3 x (N, neck C_i, H/s_i, W/s_i)
        return self.head(features)  # raw, one per level; layout known to the head only

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """The head-independent inference contract: (N, P, 4 + nc) rows [x1, y1, x2, y2 (input pixels), class
        scores in [0, 1]...], before NMS. Export, benchmarks and every runtime read this, never a head's raw output.
        """
        return self.head.decode(self(images))  # (N, P, 4+nc)

    def predict(
        self,
        images: torch.Tensor,
        conf: float = ops.PREDICT_CONF,
        iou: float = ops.PREDICT_IOU,
        max_det: int = ops.MAX_DET,
    ) -> list[torch.Tensor]:
        """Per image a (K, 6) tensor [x1, y1, x2, y2, score, cls] in input pixels.

        Runs in the current mode and grad setting: call ``eval()`` and wrap in ``torch.no_grad()`` for inference.
        """
        return ops.postprocess(self.infer(images), conf, iou, max_det=max_det)
