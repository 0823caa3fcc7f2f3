"""The backbone sources as one table: source name → how to build from it and which model names it knows.

Presets' validation, ``--backbone SOURCE:NAME``, the catalogue and ``list-backbones`` all read :data:`SOURCES`;
adding a source is one builder module and one row here. Builders import their library only when called, so
reading the table costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yoloswap.errors import UsageError, suggestion

if TYPE_CHECKING:
    from torch import nn

    from yoloswap.backbones.adapter import FeatureBackbone
    from yoloswap.presets import ModelSpec


@dataclass(frozen=True)
class Source:
    """One place backbones come from.

    Args:
        name: what a preset's ``model.source`` (and ``--backbone NAME:MODEL``) says.
        build: ``build(spec, drop_path_rate)`` returns the :class:`FeatureBackbone` on the current default device.
        models: every model name the source can build.
        create: ``create(name)`` returns the whole library model (random weights, current default device), for
            questions about its layers (which optimizer suits it) rather than its features.
        by_name: whether ``--backbone NAME:MODEL`` reaches it (the libraries); yoloswap's own CSPDarknet is
            reached through its presets, which also set its depth and width.
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


def _build_cspdarknet(spec: "ModelSpec", drop_path_rate: float) -> "FeatureBackbone":
    from yoloswap.backbones.cspdarknet_source import build_cspdarknet_backbone

    return build_cspdarknet_backbone(spec.name, spec.kwargs)


def _create_cspdarknet(name: str) -> "nn.Module":
    from yoloswap.presets import ModelSpec

    return _build_cspdarknet(ModelSpec("yoloswap", name), 0.0).body


SOURCES: dict[str, Source] = {
    "timm": Source("timm", _build_timm, _timm_models, _create_timm, by_name=True, size_kwarg="img_size"),
    # torchvision's one fixed-size model, MaxViT-T, takes an input_size but keeps its 7x7 partitions, which no
    # other common size divides: it runs at 224 only, and says so.
    "torchvision": Source("torchvision", _build_torchvision, _torchvision_models, _create_torchvision, by_name=True),
    "yoloswap": Source("yoloswap", _build_cspdarknet, lambda: ["cspdarknet"], _create_cspdarknet, by_name=False),
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
