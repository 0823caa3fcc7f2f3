"""``build_backbone``: a preset in, a :class:`FeatureBackbone` out. The single map from sources to builders."""

from __future__ import annotations

from yoloswap.backbones.adapter import FeatureBackbone
from yoloswap.presets import Preset


def build_backbone(preset: Preset) -> FeatureBackbone:
    """Build the preset's backbone with random weights (loading pretrained weights is a separate step).

    Call it inside ``with torch.device("meta"):`` to get a shape-only model that allocates nothing.
    """
    spec = preset.model
    if spec.source == "timm":
        from yoloswap.backbones.timm_source import build_timm_backbone

        return build_timm_backbone(spec.name, spec.layers, preset.drop_path_rate, spec.kwargs)
    if spec.source == "torchvision":
        from yoloswap.backbones.torchvision_source import build_torchvision_backbone

        return build_torchvision_backbone(spec.name, spec.layers, preset.drop_path_rate, spec.kwargs)
    from yoloswap.backbones.cspdarknet_source import build_cspdarknet_backbone

    return build_cspdarknet_backbone(spec.name, spec.kwargs)
