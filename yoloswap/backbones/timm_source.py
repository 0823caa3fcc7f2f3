"""Backbones from timm: any model with ``feature_info``, levels chosen by their declared stride."""

from __future__ import annotations

from typing import Any

from yoloswap.backbones.adapter import LEVEL_STRIDES, FeatureBackbone, missing_levels_hint
from yoloswap.backbones.construct import cause, construct
from yoloswap.backbones.stages import group_stages
from yoloswap.errors import BackboneRefused


def build_timm_backbone(model_name: str, layers: tuple[str, ...] | None, drop_path_rate: float,
                        kwargs: dict[str, Any]) -> FeatureBackbone:
    import timm

    extra = dict(kwargs)
    if drop_path_rate:
        extra["drop_path_rate"] = drop_path_rate
    label = f"timm:{model_name}"
    adapt_weights = None
    model = construct(lambda: timm.create_model(model_name, pretrained=False, **extra), label)
    info = list(getattr(model, "feature_info", None) or [])
    if not info:
        raise BackboneRefused(f"timm:{model_name} declares no feature levels (feature_info), so yoloswap cannot tap it")
    reductions = [int(f["reduction"]) for f in info]
    modules = [str(f["module"]) for f in info]
    if layers is not None:
        missing = [layer for layer in layers if layer not in modules]
        if missing:
            raise BackboneRefused(f"timm:{model_name} has no feature level '{missing[0]}'; levels are {', '.join(modules)}")
        indices = [modules.index(layer) for layer in layers]
    else:
        indices = [_last_index(reductions, s) for s in LEVEL_STRIDES]
        if None in indices:
            have = sorted(set(reductions))
            raise BackboneRefused(
                f"timm:{model_name} gives features only at strides {have}; a YOLOv5 neck needs strides 8, 16 and 32"
                + missing_levels_hint(have)
            )
    stage_ends = [modules[i] if (i := _last_index(reductions, s)) is not None else None for s in (4, *LEVEL_STRIDES)]

    if hasattr(model, "forward_intermediates") and hasattr(model, "prune_intermediate_layers"):
        try:
            model.prune_intermediate_layers(indices, prune_norm=True, prune_head=True)
        except Exception as exc:  # the library's own check; one line for the user
            raise BackboneRefused(f"{label} cannot be cut at strides 8/16/32 ({cause(exc)})") from None

        def extract(body, x):
            return body.forward_intermediates(x, indices=indices, intermediates_only=True)

        body = model
        if "img_size" in kwargs:  # built for another size than its pretrained one (probe.fit_to_size)
            adapt_weights = _size_adapter(model)
    else:  # older timm models: timm's own feature wrapper
        body = construct(
            lambda: timm.create_model(model_name, pretrained=False, features_only=True, out_indices=indices, **extra),
            label,
        )

        def extract(body, x):
            return body(x)

    taps = [modules[i] for i in indices]
    backbone = FeatureBackbone(body, extract, taps, group_stages(body, stage_ends), "timm", model_name)
    backbone.declared_channels = tuple(int(info[i]["num_chs"]) for i in indices)
    backbone.input_size = _input_size(model)
    backbone.adapt_weights = adapt_weights
    return backbone


def _size_adapter(model):
    """timm's own ``checkpoint_filter_fn`` for ``model``'s family, which resizes relative-position tables to the
    size the model was built for (MaxViT, CoAtNet, ...); ``None`` when the family has none. A checkpoint the filter
    does not understand (another layout) passes through unchanged, and the weights report names what still differs.
    """
    import sys

    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is None:
        return None

    def adapt(state: dict) -> dict:
        try:
            return filter_fn(dict(state), model)
        except Exception:  # the filter's assumptions about the file did not hold: match it as it is
            return state

    return adapt


def _input_size(model) -> tuple[int, int] | None:
    """The (H, W) timm's pretrained config was made for, e.g. (224, 224); ``None`` when it declares none."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size")
    return (int(size[1]), int(size[2])) if size and len(size) == 3 else None


def _last_index(reductions: list[int], stride: int) -> int | None:
    hits = [i for i, r in enumerate(reductions) if r == stride]
    return hits[-1] if hits else None
