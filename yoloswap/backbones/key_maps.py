"""Checkpoint key names as other libraries write them, translated to the names of the body yoloswap builds.

A checkpoint from the wild differs from our body's ``state_dict`` in three ways: it may be wrapped (``state_dict``,
``model``, ``module``, ``ema``), its backbone may sit under a prefix (``backbone.`` in MMClassification/MMPretrain/
MMSelfSup files, ``module.base_encoder.`` in the official MoCo v3 release), and its library may name the same layers
differently (MMClassification's ConvNeXt says ``depthwise_conv`` where timm says ``conv_dw``). Rather than trusting
a file's origin, :func:`match_keys` tries every prefix the file contains with every known layout and keeps the
reading under which the most tensors fit the body by name and shape. Parts that are never the backbone
(momentum encoders, predictors) are never considered, so a tie between twin encoders cannot pick the wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

# Wrapper keys that hold the actual state dict, most specific first (a training checkpoint often has several).
WRAPPER_KEYS = ("state_dict", "model", "module", "ema", "model_ema", "state_dict_ema")
# Prefixes under which libraries store a backbone, in order of preference when several fit equally well.
KNOWN_PREFIXES = (
    "",
    "backbone.",
    "module.base_encoder.",
    "module.backbone.",
    "base_encoder.",
    "module.encoder.",
    "encoder.",
    "module.",
    "model.",
)
# Prefix parts that name a second copy of the network trained by another rule; loading it would be a mistake.
NEVER_LOAD = ("momentum", "encoder_k", "predictor", "target_encoder")
# Buffers some releases save but the model recomputes (Swin's index tables and attention masks).
DERIVED_BUFFERS = ("relative_position_index", "attn_mask")
# BatchNorm's step counter: never worth reporting on, absent from many releases.
SKIPPED_BUFFERS = ("num_batches_tracked",)


@dataclass(frozen=True)
class Layout:
    """One library's naming, as a function from (prefix-stripped) checkpoint keys to body keys.

    ``rename`` gets all keys at once (some layouts number layers by what the file contains) and returns, for each,
    the body name or ``None`` for a derived buffer that is dropped on purpose.
    """

    name: str
    rename: Callable[[list[str]], dict[str, str | None]]


# ----------------------------------------------------------------------------------------------------------
# Layouts


def _same(keys: list[str]) -> dict[str, str | None]:
    return {k: k for k in keys}


def _regex_rules(rules: list[tuple[str, str]]) -> Callable[[str], str]:
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]

    def apply(key: str) -> str:
        for pattern, repl in compiled:
            key = pattern.sub(repl, key)
        return key

    return apply


# Official ConvNeXt (facebookresearch/ConvNeXt) -> timm ConvNeXt.
_official_convnext = _regex_rules(
    [
        (r"^downsample_layers\.0\.", "stem."),
        (r"^downsample_layers\.(\d+)\.", r"stages.\1.downsample."),
        (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
        (r"\.dwconv\.", ".conv_dw."),
        (r"\.pwconv(\d)\.", r".mlp.fc\1."),
        (r"^norm\.", "head.norm."),
        (r"^head\.(weight|bias)$", r"head.fc.\1"),
    ]
)
# MMClassification / MMPretrain ConvNeXt -> official names (then -> timm). ``norm3`` is the final-stage norm.
_mmcls_convnext = _regex_rules(
    [
        (r"\.depthwise_conv\.", ".dwconv."),
        (r"\.pointwise_conv(\d)\.", r".pwconv\1."),
        (r"^norm3\.", "norm."),
    ]
)


def official_convnext_to_timm(keys: list[str]) -> dict[str, str | None]:
    return {k: _official_convnext(k) for k in keys}


def mmcls_convnext_to_timm(keys: list[str]) -> dict[str, str | None]:
    return {k: _official_convnext(_mmcls_convnext(k)) for k in keys}


_SWIN_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.")


def official_swin_to_timm(keys: list[str]) -> dict[str, str | None]:
    """Official Swin release -> timm: patch merging closes stage i there but opens stage i+1 in timm.

    The merge order of the four 2×2 neighbours is the same in both, so the tensors need no permutation.
    """
    out: dict[str, str | None] = {}
    for k in keys:
        if k.rsplit(".", 1)[-1] in DERIVED_BUFFERS:
            out[k] = None
            continue
        k2 = _SWIN_DOWNSAMPLE.sub(lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", k)
        out[k] = re.sub(r"^head\.(weight|bias)$", r"head.fc.\1", k2)
    return out


_MM_LAYER = re.compile(r"^layer(\d+)\.(.+)$")
_MM_PARTS = ("expand_conv", "depthwise_conv", "se", "linear_conv")  # InvertedResidual's order of submodules


def mmcls_mobilenetv3_to_torchvision(keys: list[str]) -> dict[str, str | None]:
    """MMClassification MobileNetV3 (``layerN`` of ConvModules) -> torchvision (``features.N.block.i``).

    mmcls skips ``expand_conv`` where a block does not expand; torchvision then shifts every later part down by
    one, so each block's indices are counted from the parts the file actually has.
    """
    present: dict[str, list[str]] = {}
    for k in keys:
        m = _MM_LAYER.match(k)
        if m:
            part = m.group(2).split(".", 1)[0]
            if part in _MM_PARTS and part not in present.setdefault(m.group(1), []):
                present[m.group(1)].append(part)
    out: dict[str, str | None] = {}
    for k in keys:
        m = _MM_LAYER.match(k)
        if not m:
            out[k] = k
            continue
        layer, rest = m.groups()
        part, _, tail = rest.partition(".")
        if part in ("conv", "bn"):  # a plain ConvModule layer: the stem or the final 1×1 conv
            out[k] = f"features.{layer}.{0 if part == 'conv' else 1}.{tail}"
            continue
        if part not in _MM_PARTS:
            out[k] = k
            continue
        parts = sorted(present[layer], key=_MM_PARTS.index)
        index = parts.index(part)
        if part == "se":  # se.conv1.conv.weight -> fc1.weight
            tail = re.sub(r"^conv(\d)\.conv\.", r"fc\1.", tail)
        else:  # conv.weight -> 0.weight, bn.* -> 1.*
            tail = re.sub(r"^conv\.", "0.", re.sub(r"^bn\.", "1.", tail))
        out[k] = f"features.{layer}.block.{index}.{tail}"
    return out


LAYOUTS: tuple[Layout, ...] = (
    Layout("same names", _same),
    Layout("official ConvNeXt -> timm", official_convnext_to_timm),
    Layout("MMClassification ConvNeXt -> timm", mmcls_convnext_to_timm),  # after: it also reads official names
    Layout("official Swin -> timm", official_swin_to_timm),
    Layout("MMClassification MobileNetV3 -> torchvision", mmcls_mobilenetv3_to_torchvision),
)


# ----------------------------------------------------------------------------------------------------------
# Unwrapping and matching


def unwrap_state_dict(obj: Mapping) -> tuple[dict[str, torch.Tensor], str]:
    """The flat ``{name: tensor}`` inside a checkpoint, and the wrapper path it was found under (``""`` at top).

    A dict that holds tensors is a state dict; otherwise the first wrapper key present is followed. Values that are
    not tensors (epoch counters, metadata) are dropped.
    """
    path: list[str] = []
    for _ in range(4):  # wrappers nest at most a few deep (e.g. {"state_dict": {"model": ...}})
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        path.append(inner)
        obj = obj[inner]
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return tensors, ".".join(path)


@dataclass
class KeyMatch:
    """How a checkpoint's tensors map onto a body: chosen prefix and layout, and what fits where."""

    prefix: str
    layout: str
    pairs: dict[str, str] = field(default_factory=dict)  # body key -> checkpoint key, names and shapes fit
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # body keys with no checkpoint tensor
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys under the prefix that fit nowhere
    ignored: list[str] = field(default_factory=list)  # other parts of the file and derived buffers


def shapes_fit(ckpt: tuple[int, ...], body: tuple[int, ...]) -> bool:
    """Same shape, or the same up to trailing size-1 dims (a Linear's (O, I) against a 1×1 conv's (O, I, 1, 1))."""
    if ckpt == body:
        return True

    def strip(shape: tuple[int, ...]) -> tuple[int, ...]:
        while shape and shape[-1] == 1:
            shape = shape[:-1]
        return shape

    return len(ckpt) > 0 and len(body) > 0 and strip(ckpt) == strip(body)


def candidate_prefixes(keys: list[str]) -> list[str]:
    """The known prefixes, then every 1–3-part prefix the file uses, minus copies that must never load."""
    found: list[str] = list(KNOWN_PREFIXES)
    for key in keys:
        parts = key.split(".")
        for n in range(1, min(4, len(parts))):
            prefix = ".".join(parts[:n]) + "."
            if prefix not in found:
                found.append(prefix)
    return [p for p in found if not any(word in part for part in p.split(".") for word in NEVER_LOAD)]


def match_keys(body_shapes: Mapping[str, tuple[int, ...]], ckpt_shapes: Mapping[str, tuple[int, ...]]) -> KeyMatch:
    """Pick the prefix and layout under which most checkpoint tensors fit the body; ties go to the earlier
    (more common) prefix and layout. ``num_batches_tracked`` counters are left out on both sides."""
    body = {k: s for k, s in body_shapes.items() if k.rsplit(".", 1)[-1] not in SKIPPED_BUFFERS}
    ckpt = {k: s for k, s in ckpt_shapes.items() if k.rsplit(".", 1)[-1] not in SKIPPED_BUFFERS}
    best: tuple[int, str, Layout, dict[str, str | None]] | None = None
    for prefix in candidate_prefixes(list(ckpt)):
        stripped = [k[len(prefix) :] for k in ckpt if k.startswith(prefix)]
        if not stripped:
            continue
        for layout in LAYOUTS:
            names = layout.rename(stripped)
            score = sum(
                1
                for old, new in names.items()
                if new is not None and new in body and shapes_fit(ckpt[prefix + old], body[new])
            )
            if best is None or score > best[0]:
                best = (score, prefix, layout, names)
    if best is None:
        return KeyMatch(prefix="", layout=LAYOUTS[0].name, missing=sorted(body), ignored=sorted(ckpt))
    _, prefix, layout, names = best
    match = KeyMatch(prefix=prefix, layout=layout.name)
    taken: set[str] = set()
    for old, new in names.items():
        full = prefix + old
        if new is None or (new not in body and old.rsplit(".", 1)[-1] in DERIVED_BUFFERS):
            match.ignored.append(full)
        elif new not in body or new in taken:
            match.unexpected.append(full)
        elif shapes_fit(ckpt[full], body[new]):
            match.pairs[new] = full
            taken.add(new)
        else:
            match.mismatched.append((new, tuple(ckpt[full]), tuple(body[new])))
            taken.add(new)
    match.missing = [k for k in body if k not in taken]
    match.ignored += [k for k in ckpt if not k.startswith(prefix)]
    return match
