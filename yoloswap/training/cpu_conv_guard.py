"""Keep one oneDNN CPU kernel away from the one case it gets wrong.

oneDNN's weight gradient of a dense 1x1 convolution with a stride above 1 on channels-last input with fewer than
16 input channels writes past its workspace (uxlfoundation/oneDNN issue 6035, open at torch 2.14): the process
dies in ``backward()`` (segmentation fault, or "corrupted double-linked list"), and on other CPUs the weight
gradient is silently wrong or the step hangs. Such a convolution sits in the stems of RepVGG, MobileOne, FastViT
and GENet, so training any of them on the CPU in channels_last memory crashes.

The guard runs exactly those convolutions on contiguous NCHW input and NCHW weights, where oneDNN takes another
kernel, and hands their output back in the layout the input came in; every other layer keeps channels_last.
It is a pair of forward hooks, so parameter names, checkpoints, ``state_dict`` and ``deepcopy`` (EMA) are
untouched, and a later ``model.to(memory_format=...)`` cannot undo it: the weight layout is checked on every call.
"""

from __future__ import annotations

import torch
from torch import nn

UPSTREAM_ISSUE = "uxlfoundation/oneDNN#6035"
MIN_SAFE_IN_CHANNELS = 16  # from 16 input channels on, oneDNN's kernel for this case is sound


def needs_guard(conv: nn.Module) -> bool:
    """True for a dense 1x1 convolution with a stride above 1 and fewer than 16 input channels."""
    return (isinstance(conv, nn.Conv2d) and conv.groups == 1 and tuple(conv.kernel_size) == (1, 1)
            and max(conv.stride) > 1 and conv.in_channels < MIN_SAFE_IN_CHANNELS)


def guard_cpu_convolutions(model: nn.Module) -> list[str]:
    """Make every convolution of ``model`` that :func:`needs_guard` run in NCHW; returns their names (empty when
    the model holds none). Calling it twice adds nothing."""
    guarded = []
    for name, module in model.named_modules():
        if needs_guard(module):
            if not getattr(module, "_nchw_guard", False):
                _nchw_weight(module)  # now, before an optimizer or DDP sees the parameter's strides
                module.register_forward_pre_hook(_to_nchw)
                module.register_forward_hook(_back_to_input_layout)
                module._nchw_guard = True
            guarded.append(name)
    return guarded


def describe(names: list[str]) -> str:
    """The one log line for a guarded model."""
    shown = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
    return (f"cpu: {shown} run{'s' if len(names) == 1 else ''} in NCHW, the rest in channels_last (oneDNN corrupts "
            f"memory in backward of strided 1x1 convolutions under {MIN_SAFE_IN_CHANNELS} channels: {UPSTREAM_ISSUE})")


def _to_nchw(conv: nn.Conv2d, args: tuple) -> tuple:
    x = args[0]  # (B, C, H, W)
    _nchw_weight(conv)  # again, in case the model was moved to channels_last after it was guarded
    conv._nchw_guard_channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous()
    return (x.contiguous(),) + tuple(args[1:])


def _nchw_weight(conv: nn.Conv2d) -> None:
    """A 1x1 weight in channels_last strides steers oneDNN back to its channels-last kernel: give it NCHW ones."""
    if not _is_nchw(conv.weight):
        conv.weight.data = conv.weight.data.clone(memory_format=torch.contiguous_format)


def _back_to_input_layout(conv: nn.Conv2d, args: tuple, out: torch.Tensor) -> torch.Tensor:
    if getattr(conv, "_nchw_guard_channels_last", False):
        return out.contiguous(memory_format=torch.channels_last)
    return out


def _is_nchw(t: torch.Tensor) -> bool:
    """Strides exactly those of a contiguous NCHW tensor (``is_contiguous`` alone cannot tell for a 1x1 kernel,
    whose channels-last strides count as contiguous too)."""
    expected, step = [], 1
    for size in reversed(t.shape):
        expected.append(step)
        step *= size
    return tuple(reversed(expected)) == t.stride()
