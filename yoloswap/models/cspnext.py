"""RTMDet's CSPNeXt backbone (tiny/s/m/l), as MMDetection's and MMYOLO v0.6's ``CSPNeXt`` define it.

A stem of three 3x3 convs (stride 2, then two at stride 1), then four stages of (3x3 stride-2 conv, [SPPF],
CSPNeXt layer); SPPF sits before the last stage's CSP layer, and the last stage has no residuals. Widths are
``int(c * widen)``; CSP blocks use a 5x5 depthwise-separable conv and every CSP layer ends in channel attention.
Names follow MMDetection so RTMDet's ImageNet ``backbone.*`` checkpoints load by prefix.
"""

from __future__ import annotations

import torch
from torch import nn

from yoloswap.errors import ConfigError
from yoloswap.models.activations import NormSpec, check_act
from yoloswap.models.cspdarknet import scale_depth
from yoloswap.models.yolo_blocks import FourStageBackbone, ConvNormAct, CSPNeXtLayer, SPPFBlock

BASE_STEM = 64
BASE_STAGES = ((128, 3), (256, 6), (512, 6), (1024, 3))


class CSPNeXt(FourStageBackbone):
    """Returns the stage2/3/4 maps at strides 8/16/32 (96/192/384 channels at tiny: deepen 0.167, widen 0.375)."""

    def __init__(self, deepen: float = 0.33, widen: float = 0.5, act: str = "silu", norm: NormSpec = NormSpec()):
        super().__init__()
        if not deepen > 0 or not widen > 0:
            raise ConfigError(f"CSPNeXt deepen and widen must be > 0, got deepen={deepen}, widen={widen}")
        check_act(act)
        c_stem = int(BASE_STEM * widen)
        half = int(BASE_STEM * widen // 2)
        self.stem = nn.Sequential(
            ConvNormAct(3, half, 3, 2, act=act, norm=norm),
            ConvNormAct(half, half, 3, 1, act=act, norm=norm),
            ConvNormAct(half, c_stem, 3, 1, act=act, norm=norm),
        )
        stages, c_prev = [], c_stem
        for index, (c_base, n_base) in enumerate(BASE_STAGES):
            c = int(c_base * widen)
            last = index == len(BASE_STAGES) - 1
            layers: list[nn.Module] = [ConvNormAct(c_prev, c, 3, 2, act=act, norm=norm)]
            if last:
                layers.append(SPPFBlock(c, c, 5, act=act, norm=norm))
            layers.append(CSPNeXtLayer(c, c, scale_depth(n_base, deepen), shortcut=not last, act=act, norm=norm))
            stages.append(nn.Sequential(*layers))
            c_prev = c
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
