"""Blocks of the later YOLO-family backbones (YOLOv6 EfficientRep, YOLOv8 C2f CSPDarknet, RTMDet CSPNeXt).

Submodule names follow MMYOLO/MMDetection (``conv``/``bn``, ``rbr_dense``/``rbr_1x1``/``rbr_identity``,
``main_conv``/``final_conv``, ``depthwise_conv``/``pointwise_conv``), so their ``backbone.*`` state dicts load onto
ours under the "same names" layout of ``backbones/key_maps.py``. Every block takes its activation by name and its
BatchNorm settings as a :class:`NormSpec`, which is how ``act`` and ``norm`` overrides reach every layer.
"""

from __future__ import annotations

import torch
from torch import nn

from yoloswap.models.activations import NormSpec, make_act, make_bn


class FourStageBackbone(nn.Module):
    """The shape every YOLO-family backbone here shares: ``stem`` then ``stage1``..``stage4`` (strides 4/8/16/32),
    returning the stride-8/16/32 maps; subclasses only build the modules."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stage1(self.stem(x))  # (N, C1, H/4, W/4)
        p3 = self.stage2(x)  # (N, C2, H/8, W/8)
        p4 = self.stage3(p3)  # (N, C3, H/16, W/16)
        p5 = self.stage4(p4)  # (N, C4, H/32, W/32)
        return [p3, p4, p5]


class ConvNormAct(nn.Module):
    """Conv (no bias) + BatchNorm + activation; ``act=None`` leaves the activation out (a RepVGG branch)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int = 1,
        s: int = 1,
        *,
        groups: int = 1,
        act: str | None,
        norm: NormSpec,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=bias)
        self.bn = make_bn(c_out, norm)
        self.act = make_act(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))  # (N, c_out, H/s, W/s)


class RepVGGBlock(nn.Module):
    """RepVGG block: 3x3 conv+BN, 1x1 conv+BN and (same shape only) a BN identity, summed, then the activation.

    The three branches exist to train better; for inference ``deploy.reparam`` folds them into one 3x3 conv with
    bias (``fused``), which this block then runs alone.
    """

    def __init__(self, c_in: int, c_out: int, s: int = 1, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self.rbr_dense = ConvNormAct(c_in, c_out, 3, s, act=None, norm=norm)
        self.rbr_1x1 = ConvNormAct(c_in, c_out, 1, s, act=None, norm=norm)
        self.rbr_identity = make_bn(c_in, norm) if c_in == c_out and s == 1 else None
        self.act = make_act(act)
        self.fused: nn.Conv2d | None = None  # set by deploy.reparam on a copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))
        y = self.rbr_dense(x) + self.rbr_1x1(x)  # (N, c_out, H/s, W/s)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.act(y)


class _UnitChain(nn.Module):
    """Units in a row under MMYOLO's names: ``conv1`` the first, ``block`` (a Sequential, or None) the rest."""

    def _hold(self, units: list[nn.Module]) -> None:
        self.conv1 = units[0]
        self.block = nn.Sequential(*units[1:]) if len(units) > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.block(x) if self.block is not None else x


class RepStageBlock(_UnitChain):
    """``n`` RepVGG blocks in a row: ``conv1`` changes the width, ``block`` holds the other ``n - 1``."""

    def __init__(self, c_in: int, c_out: int, n: int, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self._hold([RepVGGBlock(c_in, c_out, act=act, norm=norm)]
                   + [RepVGGBlock(c_out, c_out, act=act, norm=norm) for _ in range(n - 1)])


class ConvBlock(nn.Module):
    """A plain 3x3 conv + BN + activation in the place of a RepVGG block (MMYOLO's ``ConvWrapper``, which YOLOv6-l
    trains with). Its conv keeps a bias beside the BN because MMYOLO's does, so its checkpoints load unchanged."""

    def __init__(self, c_in: int, c_out: int, s: int = 1, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self.block = ConvNormAct(c_in, c_out, 3, s, act=act, norm=norm, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class BottleRep(nn.Module):
    """Two blocks (RepVGG or plain conv) and a residual weighted by a learned scalar ``alpha``."""

    def __init__(self, channels: int, make_block, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self.conv1 = make_block(channels, channels, act=act, norm=norm)
        self.conv2 = make_block(channels, channels, act=act, norm=norm)
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + self.alpha * x


class BottleRepStage(_UnitChain):
    """``n // 2`` BottleReps in a row (at least one), as MMYOLO's ``RepStageBlock`` with ``bottle_block=BottleRep``."""

    def __init__(self, channels: int, n: int, make_block, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self._hold([BottleRep(channels, make_block, act=act, norm=norm) for _ in range(max(n // 2, 1))])


class BepC3(nn.Module):
    """YOLOv6's CSP stage block ("beer-mug RepC3"): ``conv1`` -> BottleReps, ``conv2`` bypass, concatenated,
    ``conv3`` 1x1 out; the hidden width is ``int(c_out * hidden_ratio)``."""

    def __init__(
        self, c_in: int, c_out: int, n: int, hidden_ratio: float, make_block, *, act: str, norm: NormSpec
    ) -> None:
        super().__init__()
        hidden = int(c_out * hidden_ratio)
        self.conv1 = ConvNormAct(c_in, hidden, 1, act=act, norm=norm)
        self.conv2 = ConvNormAct(c_in, hidden, 1, act=act, norm=norm)
        self.conv3 = ConvNormAct(2 * hidden, c_out, 1, act=act, norm=norm)
        self.block = BottleRepStage(hidden, n, make_block, act=act, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat((self.block(self.conv1(x)), self.conv2(x)), 1)  # (N, 2*hidden, H, W)
        return self.conv3(y)  # (N, c_out, H, W)


class SPPFBlock(nn.Module):
    """SPPF with MMYOLO's names (``conv1``, ``poolings``, ``conv2``): 1x1 to half width, three chained 5x5
    max-pools, concatenation of all four, 1x1 out. YOLOv6 calls it SimSPPF when its activation is ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 5, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        mid = c_in // 2
        self.conv1 = ConvNormAct(c_in, mid, 1, act=act, norm=norm)
        self.poolings = nn.MaxPool2d(k, 1, k // 2)
        self.conv2 = ConvNormAct(4 * mid, c_out, 1, act=act, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (N, c_in/2, H, W)
        y1 = self.poolings(x)
        y2 = self.poolings(y1)
        return self.conv2(torch.cat((x, y1, y2, self.poolings(y2)), 1))  # (N, c_out, H, W)


class DarknetBottleneck(nn.Module):
    """Two convs (``conv1``: k1, ``conv2``: k2) with a residual when asked for and shapes agree."""

    def __init__(
        self, c_in: int, c_out: int, kernels: tuple[int, int], shortcut: bool, *, act: str, norm: NormSpec
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(c_in, c_out, kernels[0], act=act, norm=norm)
        self.conv2 = ConvNormAct(c_out, c_out, kernels[1], act=act, norm=norm)
        self.add_identity = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.add_identity else y


class C2f(nn.Module):
    """YOLOv8's CSP layer with two convs: ``main_conv`` makes two halves, bottlenecks chain on the second half,
    and ``final_conv`` merges both halves with every bottleneck's output (``(2 + n) * mid`` channels)."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self.mid = int(c_out * 0.5)
        self.main_conv = ConvNormAct(c_in, 2 * self.mid, 1, act=act, norm=norm)
        self.final_conv = ConvNormAct((2 + n) * self.mid, c_out, 1, act=act, norm=norm)
        self.blocks = nn.ModuleList(
            DarknetBottleneck(self.mid, self.mid, (3, 3), shortcut, act=act, norm=norm) for _ in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.main_conv(x).split((self.mid, self.mid), 1))  # 2 x (N, mid, H, W)
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.final_conv(torch.cat(parts, 1))  # (N, c_out, H, W)


class DepthwiseSeparable(nn.Module):
    """k x k depthwise conv + BN + act, then 1x1 pointwise conv + BN + act."""

    def __init__(self, c_in: int, c_out: int, k: int, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self.depthwise_conv = ConvNormAct(c_in, c_in, k, groups=c_in, act=act, norm=norm)
        self.pointwise_conv = ConvNormAct(c_in, c_out, 1, act=act, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class ChannelAttention(nn.Module):
    """RTMDet's channel attention: global average pool, 1x1 conv with bias, hard sigmoid, rescale the input.
    Its hard sigmoid is a gate, not a layer activation: ``act`` overrides leave it alone."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))  # (N, C, H, W) * (N, C, 1, 1)


class CSPNeXtBlock(nn.Module):
    """3x3 conv, then a 5x5 depthwise-separable conv; residual when shapes agree."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(c_in, c_out, 3, act=act, norm=norm)
        self.conv2 = DepthwiseSeparable(c_out, c_out, 5, act=act, norm=norm)
        self.add_identity = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.add_identity else y


class CSPNeXtLayer(nn.Module):
    """CSP layer of CSPNeXt: ``main_conv`` -> blocks, ``short_conv`` bypass, concatenated, channel attention,
    ``final_conv``."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool, *, act: str, norm: NormSpec) -> None:
        super().__init__()
        mid = int(c_out * 0.5)
        self.main_conv = ConvNormAct(c_in, mid, 1, act=act, norm=norm)
        self.short_conv = ConvNormAct(c_in, mid, 1, act=act, norm=norm)
        self.final_conv = ConvNormAct(2 * mid, c_out, 1, act=act, norm=norm)
        self.blocks = nn.Sequential(*(CSPNeXtBlock(mid, mid, shortcut, act=act, norm=norm) for _ in range(n)))
        self.attention = ChannelAttention(2 * mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), 1)  # (N, 2*mid, H, W)
        return self.final_conv(self.attention(y))  # (N, c_out, H, W)
