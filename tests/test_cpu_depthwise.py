"""Depthwise convolutions leave bf16 autocast on the CPU (oneDNN's bf16 backward of them is twice as slow as fp32),
and nothing a user keeps notices: names, checkpoints, copies and results stay as they were."""

from __future__ import annotations

import copy

import torch
from torch import nn

from yoloswap.training.cpu_depthwise import Fp32DepthwiseConv2d, depthwise_in_fp32


def _block() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 7, padding=3, groups=8),
                         nn.Conv2d(8, 8, 1), nn.Conv2d(8, 16, 3, groups=2))


def test_only_depthwise_convolutions_with_a_spatial_kernel_are_swapped():
    model = _block()
    assert depthwise_in_fp32(model) == 1
    assert [type(m) for m in model] == [nn.Conv2d, Fp32DepthwiseConv2d, nn.Conv2d, nn.Conv2d]
    assert depthwise_in_fp32(model) == 0  # a second call finds nothing left to swap


def test_the_swap_keeps_names_checkpoints_copies_and_fp32_results():
    plain, swapped = _block(), _block()
    depthwise_in_fp32(swapped)
    assert list(plain.state_dict()) == list(swapped.state_dict())
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(plain(x), swapped(x))  # outside autocast: the same fp32 convolution
    ema = copy.deepcopy(swapped)
    assert type(ema[1]) is Fp32DepthwiseConv2d
    swapped.load_state_dict(plain.state_dict())  # checkpoints of either kind load into either


def test_under_cpu_autocast_the_depthwise_convolution_computes_in_fp32_and_its_gradients_are_fp32_exact():
    reference, swapped = _block(), _block()
    depthwise_in_fp32(swapped)
    x = torch.rand(2, 8, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = swapped[1](x.to(torch.bfloat16))
    assert out.dtype == torch.float32
    out.square().sum().backward()
    x32 = x.to(torch.bfloat16).float()  # the same input the swapped layer saw
    reference[1](x32).square().sum().backward()
    torch.testing.assert_close(swapped[1].weight.grad, reference[1].weight.grad, rtol=1e-5, atol=1e-5)
