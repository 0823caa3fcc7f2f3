"""CSPDarknet, the YOLOv5 v6.1 backbone, scaled by depth and width multipliers.

The stem and four stages are named attributes (``stem``, ``stage1`` .. ``stage4``) so that "freeze the stem and
the first N stages" means the same thing here as for every other backbone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yoloswap.errors import ConfigError
from yoloswap.models.blocks import C3, SPPF, Conv

# Unscaled (yolov5l) plan: stem width, then (width, C3 blocks) per stage.
BASE_STEM = 64
BASE_STAGES = ((128, 3), (256, 6), (512, 9), (1024, 3))


def scale_channels(c: int, widen: float) -> int:
    """Channels after width scaling, rounded up to a multiple of 8 (friendly to tensor cores)."""
    return int(math.ceil(c * widen / 8) * 8)


def scale_depth(n: int, deepen: float) -> int:
    """Block count after depth scaling; never below one block."""
    return max(round(n * deepen), 1)


class CSPDarknet(nn.Module):
    """Returns the stage2/stage3/stage4 maps at strides 8/16/32 (128/256/512 channels for deepen 0.33, widen 0.5)."""

    def __init__(self, deepen: float = 0.33, widen: float = 0.5) -> None:
        super().__init__()
        if not deepen > 0 or not widen > 0:
            raise ConfigError(f"CSPDarknet deepen and widen must be > 0, got deepen={deepen}, widen={widen}")
        c_stem = scale_channels(BASE_STEM, widen)
        self.stem = Conv(3, c_stem, k=6, s=2, p=2)
        stages = []
        c_prev = c_stem
        for index, (c_base, n_base) in enumerate(BASE_STAGES):
            c = scale_channels(c_base, widen)
            layers: list[nn.Module] = [Conv(c_prev, c, k=3, s=2), C3(c, c, n=scale_depth(n_base, deepen))]
            if index == len(BASE_STAGES) - 1:
                layers.append(SPPF(c, c, k=5))
            stages.append(nn.Sequential(*layers))
            c_prev = c
        self.stage1, self.stage2, self.stage3, self.stage4 = stages

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (N, c64, H/2, W/2)
        x = self.stage1(x)  # (N, c128, H/4, W/4)
        p3 = self.stage2(x)  # (N, c256, H/8, W/8)
        p4 = self.stage3(p3)  # (N, c512, H/16, W/16)
        p5 = self.stage4(p4)  # (N, c1024, H/32, W/32)
        return [p3, p4, p5]
