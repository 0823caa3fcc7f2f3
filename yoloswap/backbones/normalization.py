"""Which mean/std a run normalises images with: the one its weights were trained with.

Precedence, highest first (README, "Normalisation"):

1. a preset's explicit ``normalize:`` (the person who wrote the preset decided);
2. a weights file's own metadata: safetensors header keys ``mean``/``std`` (JSON lists), or a torch checkpoint's
   top-level ``mean``/``std`` or ``pretrained_cfg: {mean, std}`` (what timm and yoloswap's bench save);
3. the named library weights' config: ``timm://NAME.TAG`` → timm's ``pretrained_cfg`` (0.5/0.5 for many ViT,
   Inception and EVA tags, OpenAI's values for CLIP ones), ``torchvision://MODEL[.WEIGHTS]`` → the weights'
   ``transforms()``;
4. ImageNet's mean/std (the preset default).

Everything here reads local data only (timm's and torchvision's registries, the file's header): no download.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

Values = tuple[tuple[float, float, float], tuple[float, float, float], str]  # mean, std, where they came from


def preset_sets_normalize(backbone: str) -> bool:
    """Whether the preset ``backbone`` names (a shipped name or a YAML path) writes ``normalize:`` itself."""
    from yoloswap.config.presets import presets_dir

    text = backbone.strip()
    path = Path(text) if text.endswith((".yaml", ".yml")) or "/" in text else presets_dir() / f"{text}.yaml"
    if ":" in text and not path.is_file():
        return False  # timm:NAME, torchvision:NAME
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False  # resolve_backbone reports a bad preset file
    return isinstance(data, dict) and "normalize" in data


def weights_normalization(source: str | None) -> Values | None:
    """Mean/std the weights ``source`` declares (steps 2–3 above), or None when it declares none."""
    if source is None or source.strip().lower() == "none":
        return None
    spec = source.strip()
    if spec.startswith("timm://"):
        return _timm_values(spec[len("timm://"):])
    if spec.startswith("torchvision://"):
        return _torchvision_values(spec[len("torchvision://"):])
    path = Path(spec[len("file://"):] if spec.startswith("file://") else spec).expanduser()
    return file_values(path) if path.is_file() else None


def file_values(path: Path) -> Values | None:
    """Mean/std from a weights file's own metadata (safetensors header, or a torch checkpoint's top level)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if "mean" in meta and "std" in meta:
            return _checked(json.loads(meta["mean"]), json.loads(meta["std"]), f"{path.name} metadata")
        return None
    import torch

    try:  # mmap: the header and small objects are read, the tensors are not
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a readable checkpoint: the weights loader names what is wrong
        return None
    if not isinstance(ckpt, dict):
        return None
    cfg = ckpt.get("pretrained_cfg") if isinstance(ckpt.get("pretrained_cfg"), dict) else ckpt
    if "mean" in cfg and "std" in cfg:
        return _checked(cfg["mean"], cfg["std"], f"{path.name} metadata")
    return None


def _timm_values(spec: str) -> Values | None:
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(spec)
    except RuntimeError:
        return None  # an unknown tag: the weights loader says so
    if cfg is None or not cfg.mean or not cfg.std:
        return None
    return _checked(cfg.mean, cfg.std, f"timm pretrained_cfg of {spec}")


def _torchvision_values(spec: str) -> Values | None:
    from torchvision.models import get_model_weights

    arch, _, tag = spec.partition(".")
    try:
        choices = get_model_weights(arch)
        weights = choices[tag] if tag else choices.DEFAULT
        transform = weights.transforms()
    except (ValueError, KeyError, TypeError):
        return None
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    return _checked(mean, std, f"torchvision {arch}.{weights.name} transforms") if mean and std else None


def _checked(mean, std, origin: str) -> Values | None:
    """Three positive-std values each, as floats; anything else is not a usable declaration."""
    try:
        m, s = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        return None
    if len(m) != 3 or len(s) != 3 or any(v <= 0 for v in s):
        return None
    return m, s, origin
