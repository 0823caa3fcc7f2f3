"""YOLOv6's backbones: EfficientRep (n/t/s) and CSPBep (m/l), as MMYOLO v0.6 defines ``YOLOv6EfficientRep`` and
``YOLOv6CSPBep``.

A RepVGG stem, then four stages of (stride-2 RepVGG block, ``n`` RepVGG blocks), the last one followed by SPPF.
Widths are ``int(c * widen)`` (no rounding to 8, unlike CSPDarknet), block counts ``max(round(n * deepen), 1)``.
YOLOv6 trains it with ReLU everywhere (its SPPF with ReLU is "SimSPPF"). Module names follow MMYOLO (``stem``,
``stage1`` .. ``stage4``, each stage ``[Sequential(downsample, RepStageBlock), SPPF?]``) so its checkpoints map by
prefix.

CSPBep keeps that plan but puts a :class:`BepC3` CSP block (BottleReps, hidden width ``hidden_ratio``) after each
downsample; YOLOv6-m builds it from RepVGG blocks with ReLU, YOLOv6-l from plain conv + BN + SiLU blocks.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from yoloswap.errors import ConfigError
from yoloswap.models.activations import NormSpec, check_act
from yoloswap.models.cspdarknet import scale_depth
from yoloswap.models.yolo_blocks import BepC3, ConvBlock, FourStageBackbone, RepStageBlock, RepVGGBlock, SPPFBlock

# Unscaled plan: stem width, then (width, blocks) per stage; SPPF closes the last stage.
BASE_STEM = 64
BASE_STAGES = ((128, 6), (256, 12), (512, 18), (1024, 6))


# the ``block`` choices of CSPBep: MMYOLO's ``RepVGGBlock`` (YOLOv6-m) or ``ConvWrapper`` (YOLOv6-l)
CSPBEP_BLOCKS = {"repvgg": RepVGGBlock, "conv": ConvBlock}


class _YOLOv6Backbone(FourStageBackbone):
    """The plan both YOLOv6 backbones share: ``make_block`` as stem and as each stage's stride-2 downsample, then
    ``stage_body(width, blocks)``, SPPF after the last stage. Widths ``int(c * widen)``, blocks scaled by depth."""

    def _build(self, name: str, deepen: float, widen: float, act: str, norm: NormSpec, make_block,
               stage_body: Callable[[int, int], nn.Module]) -> None:
        if not deepen > 0 or not widen > 0:
            raise ConfigError(f"{name} deepen and widen must be > 0, got deepen={deepen}, widen={widen}")
        check_act(act)
        c_prev = int(BASE_STEM * widen)
        self.stem = make_block(3, c_prev, 2, act=act, norm=norm)
        stages = []
        for index, (c_base, n_base) in enumerate(BASE_STAGES):
            c = int(c_base * widen)
            layers: list[nn.Module] = [
                nn.Sequential(make_block(c_prev, c, 2, act=act, norm=norm), stage_body(c, scale_depth(n_base, deepen)))
            ]
            if index == len(BASE_STAGES) - 1:
                layers.append(SPPFBlock(c, c, 5, act=act, norm=norm))
            stages.append(nn.Sequential(*layers))
            c_prev = c
        self.stage1, self.stage2, self.stage3, self.stage4 = stages


class EfficientRep(_YOLOv6Backbone):
    """Returns the stage2/3/4 maps at strides 8/16/32 (128/256/512 channels at deepen 0.33, widen 0.5)."""

    def __init__(self, deepen: float = 0.33, widen: float = 0.5, act: str = "relu", norm: NormSpec = NormSpec()):
        super().__init__()
        self._build("EfficientRep", deepen, widen, act, norm, RepVGGBlock,
                    lambda c, n: RepStageBlock(c, c, n, act=act, norm=norm))


class CSPBep(_YOLOv6Backbone):
    """Returns the stage2/3/4 maps at strides 8/16/32 (192/384/768 at widen 0.75, 256/512/1024 at widen 1)."""

    def __init__(
        self,
        deepen: float = 0.6,
        widen: float = 0.75,
        hidden_ratio: float = 2 / 3,
        block: str = "repvgg",
        act: str = "relu",
        norm: NormSpec = NormSpec(),
    ):
        super().__init__()
        if block not in CSPBEP_BLOCKS:
            raise ConfigError(f"CSPBep block must be one of {', '.join(CSPBEP_BLOCKS)}, got '{block}'")
        if not 0 < hidden_ratio <= 1:
            raise ConfigError(f"CSPBep hidden_ratio must be in (0, 1], got {hidden_ratio}")
        make_block = CSPBEP_BLOCKS[block]
        self._build("CSPBep", deepen, widen, act, norm, make_block,
                    lambda c, n: BepC3(c, c, n, hidden_ratio, make_block, act=act, norm=norm))
