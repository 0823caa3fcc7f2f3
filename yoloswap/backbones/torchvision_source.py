"""Backbones from torchvision: any classification model, truncated by ``create_feature_extractor``.

torchvision models declare no strides, so the levels are measured: a meta-device forward (no memory, no
arithmetic) with hooks on the top two levels of modules records every output's stride, and the last module
to finish at each stride becomes that level's tap.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from yoloswap.backbones.adapter import LEVEL_STRIDES, FeatureBackbone, missing_levels_hint
from yoloswap.backbones.construct import cause, construct
from yoloswap.backbones.stages import group_stages
from yoloswap.errors import BackboneRefused

_PROBE_HW = (256, 192)  # unequal sides tell NCHW from NHWC


def build_torchvision_backbone(model_name: str, layers: tuple[str, ...] | None, drop_path_rate: float,
                               kwargs: dict[str, Any]) -> FeatureBackbone:
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    label = f"torchvision:{model_name}"
    builder = torchvision.models.get_model_builder(model_name)
    extra = dict(kwargs)
    if drop_path_rate:
        extra["stochastic_depth_prob"] = drop_path_rate  # torchvision's name for drop path

    def make() -> nn.Module:
        try:
            return builder(weights=None, **extra)
        except TypeError as exc:
            if "stochastic_depth_prob" not in str(exc):
                raise
            extra.pop("stochastic_depth_prob")  # a model without drop path (ResNet, MobileNet): nothing to set
            return builder(weights=None, **extra)

    model = construct(make, label)
    input_size = _input_size(model_name, model)
    strides = measure_module_strides(builder, extra, label, input_size)
    by_stride = {s: [n for n, st in strides if st == s] for s in (4, *LEVEL_STRIDES)}
    if layers is None:
        missing = [s for s in LEVEL_STRIDES if not by_stride[s]]
        if missing:
            have = sorted({st for _, st in strides})
            raise BackboneRefused(
                f"torchvision:{model_name} gives features only at strides {have}; "
                "a YOLOv5 neck needs strides 8, 16 and 32" + missing_levels_hint(have)
            )
        layers = tuple(by_stride[s][-1] for s in LEVEL_STRIDES)
    else:
        known = {n for n, _ in model.named_modules()}
        bad = [layer for layer in layers if layer not in known]
        if bad:
            raise BackboneRefused(f"torchvision:{model_name} has no module '{bad[0]}'")
    stage_ends = [by_stride[s][-1] if by_stride[s] else None for s in (4, *LEVEL_STRIDES)]
    stage_ends = [_common_tap(end, layers) for end in stage_ends]

    try:
        body = create_feature_extractor(model, return_nodes={layer: str(i) for i, layer in enumerate(layers)})
    except Exception as exc:  # torch.fx cannot trace every model; say so in one line
        raise BackboneRefused(f"{label} cannot be cut at {', '.join(layers)} ({cause(exc)})") from None
    stages = group_stages(body, stage_ends)

    def extract(body: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        out = body(x)
        return [out[str(i)] for i in range(len(out))]

    backbone = FeatureBackbone(body, extract, layers, stages, "torchvision", model_name)
    backbone.input_size = input_size
    return backbone


def measure_module_strides(builder, kwargs: dict[str, Any], label: str = "torchvision model",
                           input_size: tuple[int, int] | None = None) -> list[tuple[str, int]]:
    """(module name, stride) for every module (two name levels deep) with a 4-d output, in finishing order.

    Measured at 256x192 (unequal sides tell NCHW from NHWC); a model that only runs at its own input size
    (MaxViT's windows, ViT's position table) is measured at ``input_size`` instead.
    """
    with torch.device("meta"):
        model = construct(lambda: builder(weights=None, **kwargs), label)
    model.eval()
    try:
        return _strides_at(model, _PROBE_HW)
    except Exception as first:
        if input_size is None or input_size == _PROBE_HW:
            raise BackboneRefused(f"{label} does not run on a {_PROBE_HW[0]}x{_PROBE_HW[1]} input ({cause(first)})") from None
        try:
            return _strides_at(model, input_size)
        except Exception as exc:
            raise BackboneRefused(f"{label} does not run on a {input_size[0]}x{input_size[1]} input ({cause(exc)})") from None


def _input_size(model_name: str, model: nn.Module) -> tuple[int, int] | None:
    """The input size the model was built for: its own ``image_size`` (ViT), else the crop size torchvision's
    default weights were trained at (224 for most, 299 for Inception), if declared."""
    import torchvision

    if isinstance(getattr(model, "image_size", None), int):
        return (model.image_size, model.image_size)
    try:
        weights = torchvision.models.get_model_weights(model_name).DEFAULT
        crop = weights.transforms.keywords.get("crop_size")
    except (ValueError, AttributeError, KeyError):
        return None
    if crop is None:
        return None
    crop = crop[0] if isinstance(crop, (list, tuple)) else crop
    return (int(crop), int(crop))


def _strides_at(model: nn.Module, size: tuple[int, int]) -> list[tuple[str, int]]:
    h, w = size
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
