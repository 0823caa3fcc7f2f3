"""A faster backward for depthwise convolutions when training on a CPU.

``bench/profile_step.py`` showed a ConvNeXt-T detector step at 160 px on one core spending about half its time in
``aten::convolution_backward`` of the 18 depthwise 7×7 convolutions, although their forward costs almost nothing:
oneDNN's backward-weights primitive for depthwise convolutions is slow, 20–35× the forward, and slowest in bf16.
Two cheaper ways give the same gradients:

- the gradient of the input is itself a depthwise convolution, of the output's gradient with the kernel flipped
  (stride 1, "same" padding), which runs at the forward's speed;
- the gradient of the weight is the correlation of each input plane with its own output-gradient plane: one
  depthwise convolution over batch × channels groups whose kernel is the output gradient (k × k outputs each),
  summed over the batch, in float32. oneDNN runs that forward convolution 1.3× (ConvNeXt-T's stage 1 at 160 px)
  to 17× (stage 4) faster than its float32 backward-weights primitive (bench/RESULTS.md §13), which was itself
  faster than the bf16 one; it sums the products of the bf16-rounded activations in float32, as that primitive did.
  The bias gradient is a sum of the output gradient.

:func:`use_fast_depthwise_backward` switches a model's qualifying convolutions to it in place (their class changes;
parameters, state-dict keys and the forward result are exactly as before), so checkpoints and export are unaffected.
Without gradients (validation, predict, export) the forward is the plain convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _DepthwiseConv(torch.autograd.Function):
    """Forward: the plain depthwise convolution in ``dtype`` (autocast's, or the input's). Backward: grad of the
    input by the flipped kernel, grad of the weight by :func:`_weight_grad`, of the bias by a sum, both float32."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int, dtype: torch.dtype):
        xc, wc = x.to(dtype), weight.to(dtype)
        bc = bias.to(dtype) if bias is not None else None
        ctx.save_for_backward(xc, wc)
        ctx.padding, ctx.has_bias, ctx.x_dtype = padding, bias is not None, x.dtype
        with torch.autocast("cpu", enabled=False):
            return F.conv2d(xc, wc, bc, 1, padding, 1, wc.shape[0])

    @staticmethod
    def backward(ctx, grad):
        xc, wc = ctx.saved_tensors
        channels, pad = wc.shape[0], ctx.padding
        grad_x = grad_w = grad_b = None
        with torch.autocast("cpu", enabled=False):
            if ctx.needs_input_grad[0]:
                grad_x = F.conv2d(grad.to(wc.dtype), wc.flip(2, 3), None, 1, pad, 1, channels).to(ctx.x_dtype)
            if ctx.needs_input_grad[1]:
                grad_w = _weight_grad(xc, grad, pad)
            if ctx.needs_input_grad[2]:
                grad_b = grad.sum((0, 2, 3), dtype=torch.float32)
        return grad_x, grad_w, grad_b, None, None


def _weight_grad(x: torch.Tensor, grad: torch.Tensor, pad: int) -> torch.Tensor:
    """d(loss)/d(weight) of a stride-1, "same"-padded depthwise convolution, in float32, shaped (C, 1, k, k):
    ``sum_n sum_hw x_pad[n, c, h + i, w + j] * grad[n, c, h, w]``, as one convolution with N·C groups.
    Made contiguous in the narrow dtype first (half the bytes to move when the activations are bf16)."""
    n, c, h, w = x.shape
    planes = x.contiguous().float().view(1, n * c, h, w)
    kernels = grad.contiguous().float().view(n * c, 1, h, w)
    k = 2 * pad + 1
    return F.conv2d(planes, kernels, None, 1, pad, 1, n * c).view(n, c, k, k).sum(0).unsqueeze(1)


class FastBackwardDepthwiseConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (depthwise, stride 1, odd square kernel, "same" zero padding) whose training backward on the
    CPU takes the faster route of :class:`_DepthwiseConv`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and x.device.type == "cpu" and self.weight.requires_grad):
            return super().forward(x)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        return _DepthwiseConv.apply(x, self.weight, self.bias, self.padding[0], dtype)


def qualifies(conv: nn.Module) -> bool:
    """A plain depthwise convolution whose input gradient is the flipped-kernel convolution of the same shape."""
    if type(conv) is not nn.Conv2d:
        return False
    k = conv.kernel_size
    return (conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1 and k[0] == k[1]
            and k[0] % 2 == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.padding == (k[0] // 2, k[0] // 2) and conv.padding_mode == "zeros")


def use_fast_depthwise_backward(model: nn.Module) -> int:
    """Switch every qualifying depthwise convolution of ``model`` to :class:`FastBackwardDepthwiseConv2d` in
    place; returns how many were switched."""
    switched = 0
    for module in model.modules():
        if qualifies(module):
            module.__class__ = FastBackwardDepthwiseConv2d
            switched += 1
    return switched
