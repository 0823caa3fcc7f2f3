"""Backbones from torchvision: any classification model, truncated by ``create_feature_extractor``.

torchvision models declare no strides, so the levels are measured: a meta-device forward (no memory, no
arithmetic) with hooks on the top two levels of modules records every output's stride, and the last module
to finish at each stride becomes that level's tap.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from yoloswap.backbones.adapter import LEVEL_STRIDES, FeatureBackbone
from yoloswap.backbones.stages import group_stages
from yoloswap.errors import UsageError

_PROBE_HW = (256, 192)  # unequal sides tell NCHW from NHWC


def build_torchvision_backbone(model_name: str, layers: tuple[str, ...] | None, drop_path_rate: float,
                               kwargs: dict[str, Any]) -> FeatureBackbone:
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    builder = torchvision.models.get_model_builder(model_name)
    extra = dict(kwargs)
    if drop_path_rate:
        extra["stochastic_depth_prob"] = drop_path_rate  # torchvision's name for drop path
    try:
        model = builder(weights=None, **extra)
    except TypeError as exc:
        if "stochastic_depth_prob" not in str(exc):
            raise UsageError(f"torchvision:{model_name} does not accept these settings ({exc})") from None
        extra.pop("stochastic_depth_prob")  # a model without drop path (ResNet, MobileNet): nothing to set
        model = builder(weights=None, **extra)

    strides = measure_module_strides(builder, extra)
    by_stride = {s: [n for n, st in strides if st == s] for s in (4, *LEVEL_STRIDES)}
    if layers is None:
        missing = [s for s in LEVEL_STRIDES if not by_stride[s]]
        if missing:
            have = sorted({st for _, st in strides})
            raise UsageError(
                f"torchvision:{model_name} gives features only at strides {have}; "
                "a YOLOv5 neck needs strides 8, 16 and 32"
            )
        layers = tuple(by_stride[s][-1] for s in LEVEL_STRIDES)
    else:
        known = {n for n, _ in model.named_modules()}
        bad = [layer for layer in layers if layer not in known]
        if bad:
            raise UsageError(f"torchvision:{model_name} has no module '{bad[0]}'")
    stage_ends = [by_stride[s][-1] if by_stride[s] else None for s in (4, *LEVEL_STRIDES)]
    stage_ends = [_common_tap(end, layers) for end in stage_ends]

    body = create_feature_extractor(model, return_nodes={layer: str(i) for i, layer in enumerate(layers)})
    stages = group_stages(body, stage_ends)

    def extract(body: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        out = body(x)
        return [out[str(i)] for i in range(len(out))]

    return FeatureBackbone(body, extract, layers, stages, "torchvision", model_name)


def measure_module_strides(builder, kwargs: dict[str, Any]) -> list[tuple[str, int]]:
    """(module name, stride) for every module (two name levels deep) with a 4-d output, in finishing order."""
    with torch.device("meta"):
        model = builder(weights=None, **kwargs)
    model.eval()
    h, w = _PROBE_HW
    found: list[tuple[str, int]] = []

    def hook(name):
        def record(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                stride = _stride_of(tuple(output.shape), h, w)
                if stride is not None:
                    found.append((name, stride))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n and n.count(".") <= 1]
    try:
        with torch.no_grad():
            model(torch.empty(1, 3, h, w, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return found


def _stride_of(shape: tuple[int, ...], h: int, w: int) -> int | None:
    for fh, fw in (shape[2:4], shape[1:3]):  # NCHW, then NHWC
        if fh and fw and h % fh == 0 and w % fw == 0 and h // fh == w // fw and h // fh > 1:
            return h // fh
    return None


def _common_tap(end: str | None, layers: tuple[str, ...]) -> str | None:
    """Prefer the preset's own tap as a stage end when the measured one is its container (``features``)."""
    if end is None:
        return None
    inside = [layer for layer in layers if layer.startswith(end + ".")]
    return inside[-1] if inside else end
