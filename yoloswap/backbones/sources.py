"""The backbone sources as one table: source name → how to build from it and which model names it knows.

Presets' validation, ``--backbone SOURCE:NAME``, the catalogue and ``list-backbones`` all read :data:`SOURCES`;
adding a source is one builder module and one row here. Builders import their library only when called, so
reading the table costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yoloswap.errors import UsageError, did_you_mean, suggestion

if TYPE_CHECKING:
    from torch import nn

    from yoloswap.backbones.adapter import FeatureBackbone
    from yoloswap.config.presets import ModelSpec, Preset


@dataclass(frozen=True)
class Source:
    """One place backbones come from.

    Args:
        name: what a preset's ``model.source`` (and ``--backbone NAME:MODEL``) says.
        build: ``build(spec, drop_path_rate)`` returns the :class:`FeatureBackbone` on the current default device.
        models: every model name the source can build.
        create: ``create(name)`` returns the whole library model (random weights, current default device), for
            questions about its layers (which optimizer suits it) rather than its features.
        by_name: whether ``--backbone NAME:MODEL`` reaches it (the libraries); yoloswap's own YOLO-family
            backbones are reached through their presets, which also set its depth and width.
        size_kwarg: the constructor keyword that builds a fixed-size model (windowed attention, position tables)
            for another input size, ``[H, W]``; ``None`` when the source has none (see ``probe.fit_to_size``).
    """

    name: str
    build: Callable[["ModelSpec", float], "FeatureBackbone"]
    models: Callable[[], list[str]]
    create: Callable[[str], "nn.Module"]
    by_name: bool
    size_kwarg: str | None = None


def _build_timm(spec: "ModelSpec", drop_path_rate: float) -> "FeatureBackbone":
    from yoloswap.backbones.timm_source import build_timm_backbone

    return build_timm_backbone(spec.name, spec.layers, drop_path_rate, spec.kwargs)


def _timm_models() -> list[str]:
    import timm

    return timm.list_models()


def _create_timm(name: str) -> "nn.Module":
    import timm

    from yoloswap.backbones.construct import construct

    return construct(lambda: timm.create_model(name, pretrained=False), f"timm:{name}")


def _build_torchvision(spec: "ModelSpec", drop_path_rate: float) -> "FeatureBackbone":
    from yoloswap.backbones.torchvision_source import build_torchvision_backbone

    return build_torchvision_backbone(spec.name, spec.layers, drop_path_rate, spec.kwargs)


def _torchvision_models() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _create_torchvision(name: str) -> "nn.Module":
    import torchvision

    from yoloswap.backbones.construct import construct

    return construct(lambda: torchvision.models.get_model(name, weights=None), f"torchvision:{name}")


def _build_own(spec: "ModelSpec", drop_path_rate: float) -> "FeatureBackbone":
    from yoloswap.backbones.cspdarknet_source import build_own_backbone

    return build_own_backbone(spec.name, spec.kwargs)


def _own_models() -> list[str]:
    from yoloswap.backbones.cspdarknet_source import OWN_MODELS

    return list(OWN_MODELS)


def _create_own(name: str) -> "nn.Module":
    from yoloswap.config.presets import ModelSpec

    return _build_own(ModelSpec("yoloswap", name), 0.0).body


SOURCES: dict[str, Source] = {
    "timm": Source("timm", _build_timm, _timm_models, _create_timm, by_name=True, size_kwarg="img_size"),
    # torchvision's one fixed-size model, MaxViT-T, takes an input_size but keeps its 7x7 partitions, which no
    # other common size divides: it runs at 224 only, and says so.
    "torchvision": Source("torchvision", _build_torchvision, _torchvision_models, _create_torchvision, by_name=True),
    # yoloswap's own YOLO-family backbones (CSPDarknet, EfficientRep, C2f CSPDarknet, CSPNeXt), reached through
    # their presets, which set depth and width.
    "yoloswap": Source("yoloswap", _build_own, _own_models, _create_own, by_name=False),
}


def get_source(name: str) -> Source:
    """The table's row for ``name``; an unknown name is a :class:`UsageError` with the closest valid one."""
    try:
        return SOURCES[name]
    except KeyError:
        raise UsageError(
            f"unknown backbone source '{name}' (sources: {', '.join(SOURCES)}){suggestion(name, SOURCES)}"
        ) from None


def library_sources() -> tuple[str, ...]:
    """Sources a user can name directly as ``--backbone SOURCE:MODEL``."""
    return tuple(name for name, source in SOURCES.items() if source.by_name)


def build_backbone(spec: "ModelSpec | Preset", drop_path_rate: float = 0.0) -> "FeatureBackbone":
    """Build ``spec``'s backbone with random weights (loading pretrained weights is a separate step).

    ``spec`` is a :class:`ModelSpec`; a whole :class:`Preset` is accepted too and stands for its ``model`` and
    ``drop_path_rate`` (what training and assembly have at hand), and its ``act``/``norm`` overrides apply
    (``backbones/overrides.py``). Call it inside ``with torch.device("meta"):``
    to get a shape-only model that allocates nothing.
    """
    if hasattr(spec, "model"):  # a Preset
        from yoloswap.backbones.overrides import has_overrides

        if has_overrides(spec):
            return _build_overridden(spec)
        spec, drop_path_rate = spec.model, spec.drop_path_rate
    return get_source(spec.source).build(spec, drop_path_rate)


def _build_overridden(preset: "Preset") -> "FeatureBackbone":
    """Build ``preset``'s backbone with its act/norm: at construction where the model takes them (own backbones,
    timm's ``act_layer``), then replaced in whatever still differs (``backbones/overrides.py``)."""
    import dataclasses

    from yoloswap.backbones.cspdarknet_source import OWN_MODELS
    from yoloswap.backbones.overrides import construction_kwargs, override_part, timm_act_kwargs
    from yoloswap.errors import YoloswapError

    spec, source = preset.model, get_source(preset.model.source)
    extra: dict = {}
    if spec.source == "yoloswap" and spec.name in OWN_MODELS:
        extra = construction_kwargs(preset, OWN_MODELS[spec.name]())
    elif spec.source == "timm":
        extra = timm_act_kwargs(preset)
    backbone = None
    if extra:
        try:
            backbone = source.build(dataclasses.replace(spec, kwargs={**spec.kwargs, **extra}), preset.drop_path_rate)
        except YoloswapError:
            if spec.source != "timm":
                raise
            # this timm model's constructor has no act_layer: build it plainly and replace its modules below
    if backbone is None:
        backbone = source.build(spec, preset.drop_path_rate)
    backbone.override_notes = tuple(override_part(backbone.body, preset, f"{spec.source}:{spec.name}"))
    return backbone


def library_models(source: str) -> list[str]:
    """Every model name ``source`` can build (every classification model, for timm and torchvision)."""
    return get_source(source).models()


def check_model_name(source: str, name: str) -> None:
    """Catch a typo in ``source:name`` before anything is built, with the closest names the source knows."""
    if not name:
        raise UsageError(f"unknown backbone '{source}:': give a model name after '{source}:'")
    models = library_models(source)
    base = name.split(".")[0]  # timm accepts "model.pretrained_tag"
    if base in models:
        return
    close = did_you_mean(base, models, n=3)
    hint = "; did you mean " + " or ".join(f"'{source}:{c}'" for c in close) + "?" if close else ""
    raise UsageError(f"unknown backbone '{source}:{name}': {source} has no model '{base}'{hint}")
