"""Key names of YOLO detectors as other codebases write them, translated to the names of the detector yoloswap
builds for its ``yolov5n/s/m/l`` presets (``backbone.body.*``, ``neck.*``, ``head.*``).

One table row per origin: YOLOv5 v6.1 (``model.N.*``, its ``Detect`` at index 24 with anchors in grid units),
Ultralytics YOLOv5u (the same ``model.N.*`` layers with the anchor-free ``Detect``: ``cv2``/``cv3``/``dfl``), and
MMYOLO's YOLOv5 (``backbone.``/``neck.``/``bbox_head.`` with ConvModule/CSPLayer names). The layers are the same
blocks in the same order, so each map is a renaming; only the anchors (grid units → pixels) and the DFL bins
(a 1×1 conv weight → a vector) change form. Ultralytics YOLOv8 files map as far as their backbone (the ``yolov8*``
presets' C2f CSPDarknet): their neck is not the one yoloswap builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from yoloswap.errors import CheckpointError
from yoloswap.foreign_pickle import Inert, module_tensors, read_foreign
from yoloswap.safeload import load_checkpoint

# YOLOv5 v6.1 layer index -> yoloswap module (the yolov5*.yaml backbone and head lists, in order).
V5_LAYERS = {
    0: "backbone.body.stem", 1: "backbone.body.stage1.0", 2: "backbone.body.stage1.1",
    3: "backbone.body.stage2.0", 4: "backbone.body.stage2.1", 5: "backbone.body.stage3.0",
    6: "backbone.body.stage3.1", 7: "backbone.body.stage4.0", 8: "backbone.body.stage4.1",
    9: "backbone.body.stage4.2", 10: "neck.reduce5", 13: "neck.top_down4", 14: "neck.reduce4",
    17: "neck.top_down3", 18: "neck.down3", 20: "neck.bottom_up4", 21: "neck.down4", 23: "neck.bottom_up5",
}
V5_DETECT = 24
LEVEL_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class YoloOrigin:
    """One codebase's naming: ``claims`` tells its state dicts apart, ``rename`` maps one key (``None``: a tensor
    yoloswap recomputes or does not have), ``head`` is the yoloswap head its detector has."""

    name: str
    head: str
    claims: Callable[[list[str]], bool]
    rename: Callable[[str], str | None]


def _v5_rename(key: str, detect: Callable[[str], str | None]) -> str | None:
    m = re.match(r"^model\.(\d+)\.(.+)$", key)
    if not m:
        return None
    index, rest = int(m.group(1)), m.group(2)
    if index == V5_DETECT:
        return detect(rest)
    return f"{V5_LAYERS[index]}.{rest}" if index in V5_LAYERS else None


def _v5_detect(rest: str) -> str | None:
    if rest == "anchors":
        return "head.anchors"
    m = re.match(r"^m\.(\d)\.(weight|bias)$", rest)
    return f"head.convs.{m.group(1)}.{m.group(2)}" if m else None  # anchor_grid (older files): recomputed


def _v8_detect(rest: str) -> str | None:
    if rest == "dfl.conv.weight":
        return "head.dfl_bins"
    m = re.match(r"^cv([23])\.(\d)\.(.+)$", rest)
    if not m:
        return None
    branch = "box_branches" if m.group(1) == "2" else "cls_branches"
    return f"head.{branch}.{m.group(2)}.{m.group(3)}"


_MM_CSP = [(r"\.main_conv\.", ".cv1."), (r"\.short_conv\.", ".cv2."), (r"\.final_conv\.", ".cv3."),
           (r"\.blocks\.", ".m."), (r"\.conv1\.", ".cv1."), (r"\.conv2\.", ".cv2.")]
_MM_NECK = {"reduce_layers.2": "neck.reduce5", "top_down_layers.0.0": "neck.top_down4",
            "top_down_layers.0.1": "neck.reduce4", "top_down_layers.1": "neck.top_down3",
            "downsample_layers.0": "neck.down3", "downsample_layers.1": "neck.down4",
            "bottom_up_layers.0": "neck.bottom_up4", "bottom_up_layers.1": "neck.bottom_up5"}


def _mm_rename(key: str) -> str | None:
    if key.startswith("backbone."):
        key = "backbone.body." + key[len("backbone."):]
    elif key.startswith("neck."):
        rest = key[len("neck."):]
        part = next((p for p in sorted(_MM_NECK, key=len, reverse=True) if rest.startswith(p + ".")), None)
        if part is None:
            return None
        key = _MM_NECK[part] + rest[len(part):]
    elif key.startswith("bbox_head.head_module.convs_pred."):
        return "head.convs." + key[len("bbox_head.head_module.convs_pred."):]
    else:
        return None
    for pattern, repl in _MM_CSP:
        key = re.sub(pattern, repl, key)
    return key


def _has(pattern: str) -> Callable[[list[str]], bool]:
    compiled = re.compile(pattern)
    return lambda keys: any(compiled.match(k) for k in keys)


ORIGINS: tuple[YoloOrigin, ...] = (
    YoloOrigin("YOLOv5 v6.1", "yolov5", _has(rf"^model\.{V5_DETECT}\.m\.0\.weight$"),
               lambda k: _v5_rename(k, _v5_detect)),
    YoloOrigin("Ultralytics YOLOv5u", "yolov8", _has(rf"^model\.{V5_DETECT}\.cv2\.0\."),
               lambda k: _v5_rename(k, _v8_detect)),
    YoloOrigin("MMYOLO YOLOv5", "yolov5", _has(r"^bbox_head\.head_module\.convs_pred\.0\.weight$"), _mm_rename),
)


@dataclass
class Translated:
    """A foreign detector's tensors under yoloswap's names, and what the file's tensors say about its shape."""

    origin: YoloOrigin
    tensors: dict[str, torch.Tensor]
    unmapped: list[str]  # file keys with no yoloswap counterpart (besides recomputed buffers)
    deepen: float
    widen: float
    num_classes: int


# Ultralytics YOLOv8 (yolov8.yaml): layers 0-9 are the C2f CSPDarknet of the yolov8n/s/m/l presets, in the order of
# YOLOv5's backbone; Ultralytics names a C2f ``cv1``/``cv2``/``m.i.cv1``, yoloswap (as MMYOLO) ``main_conv``/
# ``final_conv``/``blocks.i.conv1``, and SPPF's ``cv1``/``cv2`` ``conv1``/``conv2``. Its neck (C2f, no lateral convs)
# is not the YOLOv5 neck yoloswap builds, so only the backbone has a counterpart: a backbone-weights source.
V8_DETECT = 22
_V8_BODY = [(r"^m\.(\d+)\.cv([12])\.", r"blocks.\1.conv\2."), (r"^cv1\.", "main_conv."), (r"^cv2\.", "final_conv.")]
_V8_SPPF = [(r"^cv([12])\.", r"conv\1.")]
ULTRALYTICS_V8 = "Ultralytics YOLOv8"


def is_ultralytics_v8(keys: list[str]) -> bool:
    """Keys of an Ultralytics YOLOv8 detector: its Detect (cv2/cv3 branches) at layer 22, C2f blocks at layer 2."""
    return _has(rf"^model\.{V8_DETECT}\.cv2\.0\.")(keys) and _has(r"^model\.2\.m\.0\.cv1\.")(keys)


def v8_backbone_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The C2f CSPDarknet (layers 0-9) of an Ultralytics YOLOv8 state dict under yoloswap's backbone-body names,
    as float32; the neck and head are left out."""
    out = {}
    for key, value in state.items():
        m = re.match(r"^model\.(\d+)\.(.+)$", key)
        if not m or int(m.group(1)) > 9 or key.endswith("num_batches_tracked"):
            continue
        index, rest = int(m.group(1)), m.group(2)
        for pattern, repl in _V8_SPPF if index == 9 else _V8_BODY:
            rest = re.sub(pattern, repl, rest)
        body = V5_LAYERS[index][len("backbone.body."):]
        out[f"{body}.{rest}"] = value.float() if value.is_floating_point() else value
    return out


def find_origin(keys: list[str]) -> YoloOrigin | None:
    """The table row whose naming ``keys`` follow, or ``None``."""
    return next((o for o in ORIGINS if o.claims(keys)), None)


def translate(state: Mapping[str, torch.Tensor], origin: YoloOrigin) -> Translated:
    """``state`` renamed for yoloswap, tensors as float32, anchors in pixels and DFL bins as a vector; the depth
    and width multipliers and the class count read off the tensors' shapes."""
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in state.items():
        new = origin.rename(key)
        if new is None:
            if not key.endswith(("anchor_grid", "num_batches_tracked")):
                unmapped.append(key)
            continue
        value = value.float() if value.is_floating_point() else value
        if new == "head.anchors" and origin.name == "YOLOv5 v6.1":  # grid units -> pixels
            value = value * torch.tensor(LEVEL_STRIDES, dtype=value.dtype).view(-1, 1, 1)
        if new == "head.dfl_bins":
            value = value.reshape(-1)
        out[new] = value
    stem = out.get("backbone.body.stem.conv.weight")
    if stem is None:
        raise KeyError("backbone.body.stem.conv.weight")
    widen = stem.shape[0] / 64
    blocks = {k.split(".")[5] for k in out if k.startswith("backbone.body.stage1.1.m.")}
    deepen = len(blocks) / 3
    if origin.head == "yolov8":
        num_classes = out["head.cls_branches.0.2.weight"].shape[0]
    else:
        anchors = out["head.anchors"].shape[1] if "head.anchors" in out else 3
        num_classes = out["head.convs.0.weight"].shape[0] // anchors - 5
    return Translated(origin, out, unmapped, deepen, widen, int(num_classes))


def read_yolo_file(path: Path) -> dict:
    """A weights file as a dict: through the safe loader, or, for the pickled modules of YOLOv5 and Ultralytics
    files, through the inert unpickler with the module's tensors as a state dict under ``model``."""
    try:
        return load_checkpoint(path, map_location="cpu")
    except CheckpointError as exc:
        if "arbitrary unpickling" not in str(exc):
            raise
    obj = read_foreign(path)  # refuses a pickle that would call code, in one line
    model = next((obj.get(k) for k in ("ema", "model") if isinstance(obj.get(k), Inert)), None) \
        if isinstance(obj, dict) else None
    if model is None:
        raise CheckpointError(f"checkpoint {path} holds pickled objects but no YOLOv5 / Ultralytics model")
    return {"model": dict(module_tensors(model))}


def yolo_backbone_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """The CSPDarknet of a YOLO detector state dict (YOLOv5, YOLOv5u, MMYOLO YOLOv5, Ultralytics YOLOv8), named as
    yoloswap's backbone body; ``None`` if ``state`` is not one (the neck and head of the file are left out)."""
    if is_ultralytics_v8(list(state)):
        return v8_backbone_tensors(state)
    origin = find_origin(list(state))
    if origin is None:
        return None
    body = "backbone.body."
    return {k[len(body):]: v for k, v in translate(state, origin).tensors.items() if k.startswith(body)}
