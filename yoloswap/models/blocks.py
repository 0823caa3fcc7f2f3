"""The YOLOv5 v6.1 building blocks: Conv, Bottleneck, C3 and SPPF.

Submodule names (``conv``/``bn``/``act``, ``cv1``/``cv2``/``cv3``/``m``) follow the reference so that a state dict
written by it maps onto ours by renaming prefixes only.
"""

from __future__ import annotations

import torch
from torch import nn

# YOLOv5 overrides PyTorch's BatchNorm defaults (eps 1e-5, momentum 0.1) for every norm layer.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def autopad(k: int, p: int | None = None) -> int:
    """'Same' padding for an odd kernel, so a stride-1 conv keeps the spatial size."""
    return k // 2 if p is None else p


class Conv(nn.Module):
    """Conv (no bias, BN follows) + BatchNorm + SiLU: the unit every YOLOv5 layer is made of."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, p: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, autopad(k, p), bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))  # (N, c_out, H/s, W/s)


class Bottleneck(nn.Module):
    """1x1 squeeze then 3x3 conv; the residual is added only when it is asked for and shapes agree."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True, e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c_out * e)
        self.cv1 = Conv(c_in, hidden, 1, 1)
        self.cv2 = Conv(hidden, c_out, 3, 1)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))  # (N, c_out, H, W)
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block: half the channels go through ``n`` bottlenecks, half bypass them; a 1x1 conv merges both."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = True, e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c_out * e)
        self.cv1 = Conv(c_in, hidden, 1, 1)
        self.cv2 = Conv(c_in, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c_out, 1, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.m(self.cv1(x))  # (N, hidden, H, W)
        bypass = self.cv2(x)  # (N, hidden, H, W)
        return self.cv3(torch.cat((main, bypass), dim=1))  # (N, c_out, H, W)


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: one k x k max-pool applied three times in a row (receptive fields k, 2k-1,
    3k-2) instead of three parallel pools; same result as SPP(5, 9, 13) for k=5, cheaper."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c_out, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)  # (N, c_in/2, H, W)
        y1 = self.m(x)
        y2 = self.m(y1)
        y3 = self.m(y2)
        return self.cv2(torch.cat((x, y1, y2, y3), dim=1))  # (N, c_out, H, W)
