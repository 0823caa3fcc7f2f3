"""Depthwise convolutions trained on the CPU take a faster backward that gives the same forward and gradients."""

import copy

import pytest
import torch
from torch import nn

from yoloswap.models.depthwise import FastBackwardDepthwiseConv2d, use_fast_depthwise_backward


def _grads(conv: nn.Module, x: torch.Tensor, amp: bool):
    conv.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = conv(x)
    # a gradient that differs per pixel and does not sum to zero (the bias gradient is its sum)
    weights = torch.linspace(-1, 2, y[0, 0].numel()).reshape(y.shape[2:])
    (y.float() * weights).sum().backward()
    return y.detach().float(), x.grad, conv.weight.grad, conv.bias.grad


@pytest.mark.parametrize("kernel", [3, 7])
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16-autocast"])
def test_forward_and_gradients_match_the_plain_convolution(kernel, amp):
    torch.manual_seed(0)
    plain = nn.Conv2d(8, 8, kernel, padding=kernel // 2, groups=8).to(memory_format=torch.channels_last)
    fast = copy.deepcopy(plain)
    assert use_fast_depthwise_backward(fast) == 1
    x = torch.randn(2, 8, 12, 9).contiguous(memory_format=torch.channels_last)  # batch and channels mix in the groups
    tol = 2e-2 if amp else 1e-5  # bf16: the old weight gradient summed in bf16, the new one in fp32
    for got, want in zip(_grads(fast, x, amp), _grads(plain, x, amp)):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.allclose(got, want, rtol=tol, atol=tol * want.abs().max().item())


def test_only_stride_one_same_padded_depthwise_convolutions_are_switched_and_keys_stay():
    model = nn.Sequential(
        nn.Conv2d(8, 8, 7, padding=3, groups=8),  # switched
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),  # stride 2: the flipped kernel is not its gradient
        nn.Conv2d(8, 8, 3, padding=1),  # not depthwise
        nn.Conv2d(8, 8, 3, padding=0, groups=8),  # not "same" padded
        nn.Conv2d(8, 16, 3, padding=1, groups=8),  # grouped, two outputs per group
    )
    keys = list(model.state_dict())
    assert use_fast_depthwise_backward(model) == 1
    assert [type(m) is FastBackwardDepthwiseConv2d for m in model] == [True, False, False, False, False]
    assert list(model.state_dict()) == keys
    with torch.no_grad():  # validation and export see the plain convolution
        assert model(torch.randn(1, 8, 9, 9)).shape == (1, 16, 3, 3)
