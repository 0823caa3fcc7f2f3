"""YOLOv5's own CSPDarknet as a backbone source (``source: yoloswap`` in a preset)."""

from __future__ import annotations

from typing import Any

from yoloswap.backbones.adapter import FeatureBackbone
from yoloswap.backbones.stages import group_stages
from yoloswap.errors import UsageError


def build_cspdarknet_backbone(model_name: str, kwargs: dict[str, Any]) -> FeatureBackbone:
    from yoloswap.models.cspdarknet import CSPDarknet

    if model_name != "cspdarknet":
        raise UsageError(f"yoloswap builds only 'cspdarknet', not '{model_name}'")
    try:
        body = CSPDarknet(**kwargs)
    except TypeError as exc:
        raise UsageError(f"cspdarknet does not accept these settings ({exc})") from None
    stages = group_stages(body, ["stage1", "stage2", "stage3", "stage4"])
    return FeatureBackbone(body, _extract, ["stage2", "stage3", "stage4"], stages, "yoloswap", model_name)


def _extract(body, x):
    return body(x)
