"""Assembly, the one way to make a detector: preset + classes + image size → probe → neck and head built to
fit → detector; and back from a checkpoint alone (the resolved preset and the probed plan travel inside it).

This is the only place where the parts meet. The backbone is built, the probe measures its channels, and the
neck and head are sized from that measurement, so changing the backbone name is all it takes to get a working
detector.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from yoloswap.backbones.overrides import has_overrides, override_part
from yoloswap.backbones.probe import ProbeResult, probe_backbone, runs_at
from yoloswap.backbones.sources import build_backbone
from yoloswap.checkpoint import load_checkpoint
from yoloswap.config.presets import Preset, preset_from_dict
from yoloswap.errors import CheckpointError, ConfigError, UsageError, YoloswapError, suggestion
from yoloswap.models.detector import Detector
from yoloswap.models.head import COCO_ANCHORS, DetectionHead, YOLOv5Head
from yoloswap.models.neck import YOLOv5PAFPN
from yoloswap.models.yolov8_head import YOLOv8Head

NeckWidth = float | tuple[int, int, int]


def _yolov5_head(in_channels: tuple[int, ...], plan: "DetectorPlan") -> DetectionHead:
    return YOLOv5Head(in_channels, plan.num_classes, plan.strides, plan.anchors)


def _yolov8_head(in_channels: tuple[int, ...], plan: "DetectorPlan") -> DetectionHead:
    return YOLOv8Head(in_channels, plan.num_classes, plan.strides)


# The heads, by the name a preset's `head:` field, `--head` and the plan use. Adding a head is one line here.
HEADS = {"yolov5": _yolov5_head, "yolov8": _yolov8_head}


@dataclass(frozen=True)
class DetectorPlan:
    """Everything that decides the detector's shapes; saved in checkpoints to rebuild the model exactly."""

    backbone_channels: tuple[int, int, int]
    strides: tuple[int, int, int]
    neck_channels: tuple[int, int, int]
    neck_depth: int
    num_classes: int
    anchors: tuple[tuple[tuple[float, float], ...], ...] = COCO_ANCHORS  # used by the yolov5 head only
    head: str = "yolov5"

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: _lists(v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorPlan":
        return cls(
            backbone_channels=tuple(d["backbone_channels"]),
            strides=tuple(d["strides"]),
            neck_channels=tuple(d["neck_channels"]),
            neck_depth=int(d["neck_depth"]),
            num_classes=int(d["num_classes"]),
            anchors=tuple(tuple(tuple(float(v) for v in a) for a in level) for level in d["anchors"]),
            head=str(d.get("head", "yolov5")),  # checkpoints from before the head choice are yolov5
        )


def parse_neck_width(text: str | None) -> NeckWidth | None:
    """``--neck-width``: ``0.5`` (multiplier of the probed channels) or ``128,256,512`` (explicit)."""
    if text is None or str(text).strip() == "":
        return None
    parts = [p for p in str(text).replace("[", "").replace("]", "").replace(" ", "").split(",") if p]
    try:
        if len(parts) == 1:
            value = float(parts[0])
            if value <= 0:
                raise ValueError
            return value
        if len(parts) == 3:
            chans = tuple(int(p) for p in parts)
            if any(c <= 0 for c in chans):
                raise ValueError
            return chans  # type: ignore[return-value]
    except ValueError:
        pass
    raise UsageError(f"--neck-width '{text}': give a positive multiplier (0.5) or three channel counts (128,256,512)")


def neck_channels_for(probed: tuple[int, int, int], width: NeckWidth) -> tuple[int, int, int]:
    """The neck's widths: explicit channels, or the probed ones times a multiplier (rounded up to ×8)."""
    if isinstance(width, tuple):
        return width
    if width == 1.0:
        return probed
    return tuple(max(8, math.ceil(c * width / 8) * 8) for c in probed)  # type: ignore[return-value]


def neck_depth_for(depth: float) -> int:
    """C3 blocks per neck stage: YOLOv5 scales its 3 base blocks by the depth multiplier."""
    return max(round(3 * depth), 1)


def check_head(name: str, where: str = "--head") -> str:
    """``name`` if it is a known head, else a one-line error naming ``where`` it came from."""
    if name not in HEADS:
        raise ConfigError(f"{where}: '{name}' is not one of {', '.join(HEADS)}{suggestion(name, list(HEADS))}")
    return name


def plan_detector(probed: ProbeResult | tuple[int, int, int], preset: Preset, num_classes: int,
                  neck_width: NeckWidth | None = None) -> DetectorPlan:
    channels = probed.channels if isinstance(probed, ProbeResult) else tuple(probed)
    strides = probed.strides if isinstance(probed, ProbeResult) else (8, 16, 32)
    if num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, got {num_classes}")
    check_head(preset.head, f"{preset.path or preset.name}: field 'head'")
    width = preset.neck.width if neck_width is None else neck_width
    return DetectorPlan(
        backbone_channels=tuple(channels),
        strides=tuple(strides),
        neck_channels=neck_channels_for(tuple(channels), width),
        neck_depth=neck_depth_for(preset.neck.depth),
        num_classes=num_classes,
        head=preset.head,
    )


def detector_from_plan(backbone: torch.nn.Module, plan: DetectorPlan, preset: Preset) -> Detector:
    neck = YOLOv5PAFPN(plan.backbone_channels, plan.neck_channels, plan.neck_depth)
    head = HEADS[check_head(plan.head, "plan 'head'")](neck.out_channels, plan)
    if preset.act_scope == "all" and has_overrides(preset):  # the backbone got them when it was built
        override_part(neck, preset, "the neck")
        override_part(head, preset, "the head")
    return Detector(backbone, neck, head, preset.normalize.mean, preset.normalize.std)


def build_detector(preset: Preset, num_classes: int, img_size: tuple[int, int] = (640, 640),
                   neck_width: NeckWidth | None = None) -> tuple[Detector, DetectorPlan]:
    """Build the backbone, probe it, size neck and head to the measurement. Respects ``torch.device(...)``."""
    backbone = build_backbone(preset)
    # Channels do not depend on the input size; a small probe keeps assembly cheap even on CPU.
    probe_size = (min(img_size[0], 128), min(img_size[1], 128))
    try:
        result = probe_backbone(backbone, probe_size, preset.name)
    except YoloswapError:  # windowed or fixed-size models run only at sizes they divide: probe at the real one
        result = probe_backbone(backbone, img_size, preset.name)
    plan = plan_detector(result, preset, num_classes, neck_width)
    return detector_from_plan(backbone, plan, preset), plan


def describe_detector(model: Detector, plan: DetectorPlan, img_size: tuple[int, int]) -> dict:
    """Parameters and GFLOPs (2×MACs, at ``img_size``) of backbone, neck, head (with its decode) and total."""
    from yoloswap.models.activations import act_names_in
    from yoloswap.models.complexity import count_gflops, count_params

    device = next(model.parameters()).device
    x = torch.zeros(1, 3, *img_size, device=device)
    with torch.no_grad():
        feats = model.backbone(x)
        neck_out = model.neck(feats)
    parts = {
        "backbone": {"params": count_params(model.backbone), "gflops": count_gflops(model.backbone, x)},
        "neck": {"params": count_params(model.neck), "gflops": count_gflops(model.neck, (feats,))},
        "head": {"params": count_params(model.head),  # forward and decode: what inference runs
                 "gflops": count_gflops(model.head, (neck_out,), call=lambda f: model.head.decode(model.head(f)))},
    }
    total_params = count_params(model)
    return {
        "params": total_params,
        "gflops": round(sum(p["gflops"] for p in parts.values()), 4),
        "channels": list(plan.backbone_channels),
        "strides": list(plan.strides),
        "neck_channels": list(plan.neck_channels),
        "neck_depth": plan.neck_depth,
        "num_classes": plan.num_classes,
        "head": plan.head,
        "img_size": list(img_size),
        "activations": {part: act_names_in(getattr(model, part)) for part in ("backbone", "neck", "head")},
        "parts": {k: {"params": v["params"], "gflops": round(v["gflops"], 4)} for k, v in parts.items()},
    }


def _lists(value):
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ from a file

CHECKPOINT_FORMAT = "yoloswap-detector-v1"


def is_detector_checkpoint(ckpt: dict) -> bool:
    return isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT


def detector_from_checkpoint(ckpt: dict, path: Path | str = "<checkpoint>", use_ema: bool = True):
    """Rebuild the detector recorded in ``ckpt`` (no preset file needed) with its trained weights.

    Returns ``(model, preset, plan, names, category_ids)``; the model is on the CPU in eval mode.
    """
    if not is_detector_checkpoint(ckpt):
        raise CheckpointError(f"{path}: not a yoloswap detector checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    try:
        preset = preset_from_dict(ckpt["config"]["preset"], origin=f"{path} (embedded preset)")
        plan = DetectorPlan.from_dict(ckpt["plan"])
        names = list(ckpt["names"])
        category_ids = ckpt.get("category_ids")
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint is missing its model description ({exc})") from None
    with torch.device("cpu"):
        model = detector_from_plan(build_backbone(preset), plan, preset)
    state = ckpt.get("ema") if use_ema and ckpt.get("ema") is not None else ckpt.get("model")
    if state is None:
        raise CheckpointError(f"{path}: checkpoint holds no model weights")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the recorded model ({str(exc).splitlines()[0]})") from None
    return model.eval(), preset, plan, names, category_ids


def load_detector(path: Path | str, use_ema: bool = True):
    ckpt = load_checkpoint(Path(path))
    return detector_from_checkpoint(ckpt, path, use_ema)


def inference_size(preset, trained: int, requested: int | None, path: Path | str) -> int:
    """The input side to run the checkpoint at ``path`` with: ``requested`` (``--img-size``) or the size it was
    trained at. A backbone built for a fixed size (windowed timm models, see ``probe.fit_to_size``) may not run at
    another; that is one line naming the size that works, checked on the meta device before any image is read.
    """
    size = requested or trained
    if size != trained and not runs_at(preset, (size, size)):
        raise UsageError(f"--img-size {size}: the backbone of {path} ({preset.name}) was built for {trained}x{trained} "
                         f"inputs and does not run at {size}x{size}; use --img-size {trained}")
    return size
