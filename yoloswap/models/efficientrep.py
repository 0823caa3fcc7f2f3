"""YOLOv6's EfficientRep backbone (n/t/s), as MMYOLO v0.6 defines ``YOLOv6EfficientRep``.

A RepVGG stem, then four stages of (stride-2 RepVGG block, ``n`` RepVGG blocks), the last one followed by SPPF.
Widths are ``int(c * widen)`` (no rounding to 8, unlike CSPDarknet), block counts ``max(round(n * deepen), 1)``.
YOLOv6 trains it with ReLU everywhere (its SPPF with ReLU is "SimSPPF"). Module names follow MMYOLO (``stem``,
``stage1`` .. ``stage4``, each stage ``[Sequential(downsample, RepStageBlock), SPPF?]``) so its checkpoints map by
prefix.
"""

from __future__ import annotations

import torch
from torch import nn

from yoloswap.errors import ConfigError
from yoloswap.models.activations import NormSpec, check_act
from yoloswap.models.cspdarknet import scale_depth
from yoloswap.models.yolo_blocks import FourStageBackbone, RepStageBlock, RepVGGBlock, SPPFBlock

# Unscaled plan: stem width, then (width, blocks) per stage; SPPF closes the last stage.
BASE_STEM = 64
BASE_STAGES = ((128, 6), (256, 12), (512, 18), (1024, 6))


class EfficientRep(FourStageBackbone):
    """Returns the stage2/3/4 maps at strides 8/16/32 (128/256/512 channels at deepen 0.33, widen 0.5)."""

    def __init__(self, deepen: float = 0.33, widen: float = 0.5, act: str = "relu", norm: NormSpec = NormSpec()):
        super().__init__()
        if not deepen > 0 or not widen > 0:
            raise ConfigError(f"EfficientRep deepen and widen must be > 0, got deepen={deepen}, widen={widen}")
        check_act(act)
        c_prev = int(BASE_STEM * widen)
        self.stem = RepVGGBlock(3, c_prev, 2, act=act, norm=norm)
        stages = []
        for index, (c_base, n_base) in enumerate(BASE_STAGES):
            c = int(c_base * widen)
            body = nn.Sequential(
                RepVGGBlock(c_prev, c, 2, act=act, norm=norm),
                RepStageBlock(c, c, scale_depth(n_base, deepen), act=act, norm=norm),
            )
            layers: list[nn.Module] = [body]
            if index == len(BASE_STAGES) - 1:
                layers.append(SPPFBlock(c, c, 5, act=act, norm=norm))
            stages.append(nn.Sequential(*layers))
            c_prev = c
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
