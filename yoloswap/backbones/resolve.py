"""What follows ``--backbone``, turned into a :class:`Preset`: a preset name, a path to the user's own preset
file, or ``SOURCE:MODEL`` (``timm:convnext_tiny``, ``torchvision:resnet50``) for any classification model.

It lives with the backbones, above the preset schema, because checking a model name and choosing the optimizer
for a library model both need the table of sources and a look at the model itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from yoloswap.backbones.sources import SOURCES, get_source, library_sources
from yoloswap.errors import ConfigError, UsageError, suggestion
from yoloswap.config.presets import ModelSpec, OptimizerSpec, Preset, load_preset_file, preset_names, presets_dir

if TYPE_CHECKING:
    from torch import nn

# Transformers and ConvNeXt-style models train best with AdamW at a lower lr (their papers' and MMYOLO's recipe);
# plain CNNs keep YOLOv5's SGD defaults (OptimizerSpec()).
ATTENTION_RECIPE = OptimizerSpec("adamw", 0.001, 0.9, 0.05)


def resolve_backbone(text: str) -> Preset:
    """A preset name, a preset file path, or ``SOURCE:MODEL`` for a library model."""
    text = text.strip()
    source, sep, name = text.partition(":")
    if sep and source in library_sources():
        return library_preset(source, name)
    if text.endswith((".yaml", ".yml")) or "/" in text or Path(text).is_file():
        return check_preset(load_preset_file(Path(text)))
    if sep:
        raise UsageError(
            f"unknown backbone '{text}': '{source}' is not a backbone source "
            f"(use {' or '.join(f'{s}:NAME' for s in library_sources())}){suggestion(source, library_sources())}"
        )
    names = preset_names()
    if text not in names:
        hint = suggestion(text, names) or " (see `yoloswap list-backbones`; timm:NAME and torchvision:NAME work too)"
        raise UsageError(f"unknown backbone '{text}'{hint}")
    return check_preset(load_preset_file(presets_dir() / f"{text}.yaml"))


def check_preset(preset: Preset) -> Preset:
    """A preset's ``model.source`` must be a row of the source table; the error names the file and the field."""
    if preset.model.source not in SOURCES:
        raise ConfigError(
            f"{preset.path or preset.name}: field 'model.source': '{preset.model.source}' is not one of "
            f"{', '.join(SOURCES)}{suggestion(preset.model.source, SOURCES)}"
        )
    return preset


def library_preset(source: str, model_name: str) -> Preset:
    """A preset for any timm/torchvision classification model; the optimizer recipe follows its layers."""
    from yoloswap.backbones.sources import check_model_name

    check_model_name(source, model_name)
    import torch

    with torch.device("meta"):  # layers only: nothing allocated
        model = get_source(source).create(model_name.split(".")[0])
    return Preset(
        name=f"{source}:{model_name}",
        family=source,
        description=f"{model_name} from {source}",
        model=ModelSpec(source=source, name=model_name),
        weights="none",
        optimizer=ATTENTION_RECIPE if has_attention_or_layernorm(model) else OptimizerSpec(),
    )


def has_attention_or_layernorm(model: "nn.Module") -> bool:
    """Whether ``model`` holds attention or LayerNorm layers: the transformer/ConvNeXt family, whatever its name.

    ResNeXt has "next" in its name and is a plain CNN; ConvNeXt is convolutional but normalises with LayerNorm
    and was trained like a transformer. Reading the layers tells them apart where names cannot.
    """
    from torch import nn

    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.MultiheadAttention)):
            return True
        if type(module).__name__.endswith("Attention"):  # timm's Attention, Swin's (Shifted)WindowAttention, ...
            return True
    return False
