"""COCO-trained YOLO detectors from other codebases as yoloswap checkpoints: ``yolov5s.pt`` (YOLOv5 v6.1),
``yolov5su.pt`` (Ultralytics) and MMYOLO's ``yolov5_s-v61_*.pth``.

:func:`read_detector_file` is the one door every command uses for a detector file: a yoloswap checkpoint passes
through; a foreign file is read (pickled modules only through :mod:`yoloswap.foreign_pickle`, which runs none of
their code), its keys renamed by :mod:`yoloswap.backbones.yolo_key_maps`, and it comes out as a yoloswap
checkpoint of the matching preset (``yolov5n/s/m/l``, with the file's head) with the file's class names. So
``val``, ``predict``, ``export`` and ``train --weights`` take such a file as they take their own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from yoloswap.assembly import CHECKPOINT_FORMAT, DetectorPlan, detector_from_plan, is_detector_checkpoint
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.sources import build_backbone
from yoloswap.backbones.yolo_key_maps import (LEVEL_STRIDES, ULTRALYTICS_V8, Translated, find_origin,
                                              is_ultralytics_v8, translate)
from yoloswap.backbones.key_maps import unwrap_state_dict
from yoloswap.errors import BackboneOnlyFile, CheckpointError
from yoloswap.foreign_pickle import Inert, module_tensors, read_foreign
from yoloswap.models.cspdarknet import scale_channels, scale_depth
from yoloswap.safeload import load_checkpoint

YOLOV5_PRESETS = ("yolov5n", "yolov5s", "yolov5m", "yolov5l")


def read_detector_file(path: Path | str) -> dict:
    """A yoloswap detector checkpoint for ``path``: its own, or a foreign YOLO file converted (see module doc).

    Raises :class:`CheckpointError` with one line for an unreadable or unsafe file and for one that is neither.
    """
    path = Path(path)
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        if "arbitrary unpickling" not in str(exc):
            raise
        ckpt = read_foreign(path)  # pickled modules: rebuilt inert, or refused with its own one line
    if is_detector_checkpoint(ckpt):
        return ckpt
    converted = foreign_checkpoint(ckpt, path)
    if converted is None:
        raise CheckpointError(f"{path}: not a yoloswap detector checkpoint, nor a YOLOv5 / Ultralytics YOLOv5u / "
                              "MMYOLO YOLOv5 detector file")
    return converted


V8_SIZES = {16: "n", 32: "s", 48: "m", 64: "l"}  # yolov8*.yaml's stem width (64 × width) -> the preset's size


def foreign_checkpoint(obj, path: Path | str) -> dict | None:
    """The yoloswap checkpoint for a foreign YOLO file's contents ``obj``, or ``None`` if it is not one."""
    if not isinstance(obj, dict):
        return None
    model = next((obj.get(k) for k in ("ema", "model") if isinstance(obj.get(k), Inert)), None)
    if model is not None:
        state = dict(module_tensors(model))
        names = model.attrs.get("names")
    else:
        state, _ = unwrap_state_dict(obj)
        names = _mm_names(obj)
    if is_ultralytics_v8(list(state)):
        stem = state.get("model.0.conv.weight")
        size = V8_SIZES.get(stem.shape[0] if stem is not None else 0, "n/s/m/l")
        raise BackboneOnlyFile(f"{path}: an {ULTRALYTICS_V8} detector, whose C2f neck yoloswap does not build; its "
                               f"backbone loads as backbone weights: yoloswap train --backbone yolov8{size} "
                               f"--weights {path}")
    origin = find_origin(list(state))
    if origin is None:
        return None
    try:
        found = translate(state, origin)
    except KeyError as exc:
        raise CheckpointError(f"{path}: a {origin.name} file without its {exc} tensor") from None
    return _as_checkpoint(found, _names(names, found.num_classes), path)


def _as_checkpoint(found: Translated, names: list[str], path: Path | str) -> dict:
    preset_name = next((n for n in YOLOV5_PRESETS if _fits(n, found)), None)
    if preset_name is None:
        raise CheckpointError(f"{path}: a {found.origin.name} detector of width x{found.widen:g} and depth "
                              f"x{found.deepen:g}, which none of {', '.join(YOLOV5_PRESETS)} is")
    preset = resolve_backbone(preset_name)
    preset = dataclasses.replace(preset, head=found.origin.head)
    widths = tuple(scale_channels(c, found.widen) for c in (256, 512, 1024))
    anchors = found.tensors.get("head.anchors")
    plan = DetectorPlan(
        backbone_channels=widths, strides=LEVEL_STRIDES, neck_channels=widths,
        neck_depth=max(round(3 * preset.neck.depth), 1), num_classes=found.num_classes, head=found.origin.head,
        **({"anchors": tuple(tuple(tuple(float(v) for v in a) for a in lvl) for lvl in anchors.tolist())}
           if anchors is not None else {}),
    )
    with torch.device("cpu"):
        model = detector_from_plan(build_backbone(preset), plan, preset)
    own = model.state_dict()
    bad = [k for k, v in found.tensors.items() if k not in own or own[k].shape != v.shape]
    recomputed = ("num_batches_tracked", "head.strides", "head.anchors")  # MMYOLO files: COCO anchors (its config)
    missing = [k for k in own if k not in found.tensors and not k.endswith(recomputed)]
    if bad or missing or found.unmapped:
        what = bad[:2] or missing[:2] or found.unmapped[:2]
        raise CheckpointError(f"{path}: a {found.origin.name} file that does not fit yoloswap's {preset_name} "
                              f"exactly (e.g. {', '.join(what)}); only unmodified v6.1 layouts are read")
    model.load_state_dict(found.tensors, strict=False)
    return {
        "format": CHECKPOINT_FORMAT,
        "config": {"preset": preset.to_dict(), "options": {"img_size": 640, "data": None}},
        "plan": plan.to_dict(),
        "names": names,
        "category_ids": None,
        "model": model.state_dict(),
        "ema": None,
        "origin": {"file": str(path), "codebase": found.origin.name, "preset": preset_name,
                   "tensors": sum(not k.endswith("num_batches_tracked") for k in found.tensors)},
    }


def _fits(preset_name: str, found: Translated) -> bool:
    kwargs = resolve_backbone(preset_name).model.kwargs
    return (scale_channels(64, kwargs["widen"]) == scale_channels(64, found.widen)
            and scale_depth(3, kwargs["deepen"]) == round(found.deepen * 3))


def _names(names, num_classes: int) -> list[str]:
    """The file's class names (a list, or Ultralytics' ``{index: name}``), else ``class0``, ``class1``, ..."""
    if isinstance(names, dict):
        names = [names[i] for i in sorted(names)]
    if isinstance(names, (list, tuple)) and len(names) == num_classes:
        return [str(n) for n in names]
    return [f"class{i}" for i in range(num_classes)]


def _mm_names(obj: dict):
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    dataset = meta.get("dataset_meta") if isinstance(meta.get("dataset_meta"), dict) else {}
    return dataset.get("classes")
