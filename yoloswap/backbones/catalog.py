"""Which model names the sources know, so a typo is caught before anything is built."""

from __future__ import annotations

from yoloswap.backbones.sources import get_source
from yoloswap.errors import UsageError, did_you_mean


def library_models(source: str) -> list[str]:
    """Every model name ``source`` can build (every classification model, for timm and torchvision)."""
    return get_source(source).models()


def check_model_name(source: str, name: str) -> None:
    if not name:
        raise UsageError(f"unknown backbone '{source}:': give a model name after '{source}:'")
    models = library_models(source)
    base = name.split(".")[0]  # timm accepts "model.pretrained_tag"
    if base in models:
        return
    close = did_you_mean(base, models, n=3)
    hint = "; did you mean " + " or ".join(f"'{source}:{c}'" for c in close) + "?" if close else ""
    raise UsageError(f"unknown backbone '{source}:{name}': {source} has no model '{base}'{hint}")
