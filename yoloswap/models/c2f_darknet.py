"""YOLOv8's CSPDarknet with C2f layers (n/s/m/l), as MMYOLO v0.6's ``YOLOv8CSPDarknet`` and Ultralytics'
``yolov8.yaml`` define it.

A 3x3 stride-2 stem, then four stages of (3x3 stride-2 conv, C2f with shortcuts), the last followed by SPPF.
Widths round up to a multiple of 8 after scaling, as in YOLOv5; the last stage's unscaled width is capped per size
(1024 for n/s, 768 for m, 512 for l and x), which is why yolov8l ends at 512 channels, not 1024.
"""

from __future__ import annotations

import torch
from torch import nn

from yoloswap.errors import ConfigError
from yoloswap.models.activations import NormSpec, check_act
from yoloswap.models.cspdarknet import scale_channels, scale_depth
from yoloswap.models.yolo_blocks import FourStageBackbone, C2f, ConvNormAct, SPPFBlock

BASE_STEM = 64
BASE_STAGES = ((128, 3), (256, 6), (512, 6), (None, 3))  # None: last_stage_channels


class C2fDarknet(FourStageBackbone):
    """Returns the stage2/3/4 maps at strides 8/16/32 (128/256/512 channels for yolov8s)."""

    def __init__(
        self,
        deepen: float = 0.33,
        widen: float = 0.5,
        last_stage_channels: int = 1024,
        act: str = "silu",
        norm: NormSpec = NormSpec(),
    ) -> None:
        super().__init__()
        if not deepen > 0 or not widen > 0 or not last_stage_channels > 0:
            raise ConfigError(
                f"C2f CSPDarknet deepen, widen and last_stage_channels must be > 0, got {deepen}, {widen}, "
                f"{last_stage_channels}"
            )
        check_act(act)
        c_prev = scale_channels(BASE_STEM, widen)
        self.stem = ConvNormAct(3, c_prev, 3, 2, act=act, norm=norm)
        stages = []
        for index, (c_base, n_base) in enumerate(BASE_STAGES):
            c = scale_channels(c_base or last_stage_channels, widen)
            layers: list[nn.Module] = [
                ConvNormAct(c_prev, c, 3, 2, act=act, norm=norm),
                C2f(c, c, scale_depth(n_base, deepen), shortcut=True, act=act, norm=norm),
            ]
            if index == len(BASE_STAGES) - 1:
                layers.append(SPPFBlock(c, c, 5, act=act, norm=norm))
            stages.append(nn.Sequential(*layers))
            c_prev = c
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
