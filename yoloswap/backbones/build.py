"""``build_backbone``: a model spec in, a :class:`FeatureBackbone` out, through the one table of sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from yoloswap.backbones.sources import get_source

if TYPE_CHECKING:
    from yoloswap.backbones.adapter import FeatureBackbone
    from yoloswap.presets import ModelSpec, Preset


def build_backbone(spec: "ModelSpec | Preset", drop_path_rate: float = 0.0) -> "FeatureBackbone":
    """Build ``spec``'s backbone with random weights (loading pretrained weights is a separate step).

    ``spec`` is a :class:`ModelSpec`; a whole :class:`Preset` is accepted too and stands for its ``model`` and
    ``drop_path_rate`` (what training and assembly have at hand). Call it inside ``with torch.device("meta"):``
    to get a shape-only model that allocates nothing.
    """
    if hasattr(spec, "model"):  # a Preset
        spec, drop_path_rate = spec.model, spec.drop_path_rate
    return get_source(spec.source).build(spec, drop_path_rate)
