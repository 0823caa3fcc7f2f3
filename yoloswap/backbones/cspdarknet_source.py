"""yoloswap's own YOLO-family backbones as one backbone source (``source: yoloswap`` in a preset).

:data:`OWN_MODELS` is the one table from a model name to its module: YOLOv5's CSPDarknet, YOLOv6's EfficientRep and CSPBep,
YOLOv8's C2f CSPDarknet and RTMDet's CSPNeXt. All five name their stem and stages ``stem``, ``stage1`` ..
``stage4`` and return the stage2/3/4 maps, so one adapter serves them all.
"""

from __future__ import annotations

from typing import Any

from yoloswap.backbones.adapter import FeatureBackbone
from yoloswap.backbones.stages import group_stages
from yoloswap.errors import ConfigError, UsageError


def _cspdarknet():
    from yoloswap.models.cspdarknet import CSPDarknet

    return CSPDarknet


def _efficientrep():
    from yoloswap.models.efficientrep import EfficientRep

    return EfficientRep


def _cspbep():
    from yoloswap.models.efficientrep import CSPBep

    return CSPBep


def _c2f_darknet():
    from yoloswap.models.c2f_darknet import C2fDarknet

    return C2fDarknet


def _cspnext():
    from yoloswap.models.cspnext import CSPNeXt

    return CSPNeXt


# model name -> the module class (imported when asked for)
OWN_MODELS = {
    "cspdarknet": _cspdarknet,
    "efficientrep": _efficientrep,
    "cspbep": _cspbep,
    "c2f-darknet": _c2f_darknet,
    "cspnext": _cspnext,
}


def build_own_backbone(model_name: str, kwargs: dict[str, Any]) -> FeatureBackbone:
    if model_name not in OWN_MODELS:
        raise UsageError(f"yoloswap builds {', '.join(OWN_MODELS)}, not '{model_name}'")
    try:
        body = OWN_MODELS[model_name]()(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs: {model_name} does not accept these settings ({exc})") from None
    except ConfigError as exc:  # a value the model refuses (block type, ratio, factors): name the field it came from
        raise ConfigError(f"model.kwargs: {exc}") from None
    stages = group_stages(body, ["stage1", "stage2", "stage3", "stage4"])
    return FeatureBackbone(body, _extract, ["stage2", "stage3", "stage4"], stages, "yoloswap", model_name)


def _extract(body, x):
    return body(x)
