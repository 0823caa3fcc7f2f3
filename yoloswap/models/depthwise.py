"""A faster backward for depthwise convolutions when training on a CPU.

``bench/profile_step.py`` showed a ConvNeXt-T detector step at 160 px on one core spending about half its time in
``aten::convolution_backward`` of the 18 depthwise 7×7 convolutions, although their forward costs almost nothing:
oneDNN's backward-weights primitive for depthwise convolutions is slow, 20–35× the forward, and slowest in bf16.
Two cheaper ways give the same gradients:

- the gradient of the input is itself a depthwise convolution, of the output's gradient with the kernel flipped
  (stride 1, "same" padding), which runs at the forward's speed;
- the gradient of the weight and bias comes from the same backward primitive in float32, which is 2–4× faster than
  in bf16 here and more exact (the products it sums are those of the bf16-rounded activations, as before).

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
    input by the flipped kernel, grad of weight and bias by the float32 backward primitive."""

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
            if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
                _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                    grad.float(), xc.float(), wc.float(), [channels] if ctx.has_bias else None, [1, 1],
                    [pad, pad], [1, 1], False, [0, 0], channels, [False, True, ctx.has_bias])
        return grad_x, grad_w, grad_b, None, None


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
