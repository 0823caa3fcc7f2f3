"""The YOLOv5 PAFPN neck: a top-down path (FPN) followed by a bottom-up path (PAN).

Input and output widths are independent, so any backbone's measured channels can feed it and the head sees the
widths asked for. With inputs equal to outputs (128, 256, 512) and depth 1 this is exactly the YOLOv5s v6.1 neck.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from yoloswap.models.blocks import C3, Conv


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling to ``like``'s size: x2 for sizes that are multiples of 32, and still aligned when the
    backbone rounds odd sizes up."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class YOLOv5PAFPN(nn.Module):
    """Three levels in (strides 8/16/32), three levels out with ``out_channels`` widths."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], depth: int) -> None:
        super().__init__()
        if len(in_channels) != 3 or len(out_channels) != 3:
            raise ValueError(
                f"YOLOv5PAFPN needs 3 input and 3 output widths, got in={list(in_channels)} out={list(out_channels)}"
            )
        if depth < 1:
            raise ValueError(f"YOLOv5PAFPN depth must be >= 1, got {depth}")
        i3, i4, i5 = (int(c) for c in in_channels)
        o3, o4, o5 = (int(c) for c in out_channels)
        self.in_channels = (i3, i4, i5)
        self.out_channels = (o3, o4, o5)
        # top-down
        self.reduce5 = Conv(i5, o4, 1, 1)
        self.top_down4 = C3(o4 + i4, o4, n=depth, shortcut=False)
        self.reduce4 = Conv(o4, o3, 1, 1)
        self.top_down3 = C3(o3 + i3, o3, n=depth, shortcut=False)
        # bottom-up
        self.down3 = Conv(o3, o3, 3, 2)
        self.bottom_up4 = C3(o3 + o3, o4, n=depth, shortcut=False)
        self.down4 = Conv(o4, o4, 3, 2)
        self.bottom_up5 = C3(o4 + o4, o5, n=depth, shortcut=False)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = features  # (N, i3, H/8, W/8), (N, i4, H/16, W/16), (N, i5, H/32, W/32)
        lateral5 = self.reduce5(c5)  # (N, o4, H/32, W/32)
        x = torch.cat((_upsample_to(lateral5, c4), c4), dim=1)  # (N, o4+i4, H/16, W/16)
        x = self.top_down4(x)  # (N, o4, H/16, W/16)
        lateral4 = self.reduce4(x)  # (N, o3, H/16, W/16)
        x = torch.cat((_upsample_to(lateral4, c3), c3), dim=1)  # (N, o3+i3, H/8, W/8)
        p3 = self.top_down3(x)  # (N, o3, H/8, W/8)
        x = torch.cat((self.down3(p3), lateral4), dim=1)  # (N, 2*o3, H/16, W/16)
        p4 = self.bottom_up4(x)  # (N, o4, H/16, W/16)
        x = torch.cat((self.down4(p4), lateral5), dim=1)  # (N, 2*o4, H/32, W/32)
        p5 = self.bottom_up5(x)  # (N, o5, H/32, W/32)
        return [p3, p4, p5]
