"""A detector from a checkpoint alone: the resolved preset and the probed plan travel inside it."""

from __future__ import annotations

from pathlib import Path

import torch

from yoloswap.errors import CheckpointError, UsageError

CHECKPOINT_FORMAT = "yoloswap-detector-v1"


def is_detector_checkpoint(ckpt: dict) -> bool:
    return isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT


def detector_from_checkpoint(ckpt: dict, path: Path | str = "<checkpoint>", use_ema: bool = True):
    """Rebuild the detector recorded in ``ckpt`` (no preset file needed) with its trained weights.

    Returns ``(model, preset, plan, names, category_ids)``; the model is on the CPU in eval mode.
    """
    from yoloswap.backbones.build import build_backbone
    from yoloswap.assembly import DetectorPlan, detector_from_plan
    from yoloswap.presets import preset_from_dict

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
    from yoloswap.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(Path(path))
    return detector_from_checkpoint(ckpt, path, use_ema)


def inference_size(preset, trained: int, requested: int | None, path: Path | str) -> int:
    """The input side to run the checkpoint at ``path`` with: ``requested`` (``--img-size``) or the size it was
    trained at. A backbone built for a fixed size (windowed timm models, see ``probe.fit_to_size``) may not run at
    another; that is one line naming the size that works, checked on the meta device before any image is read.
    """
    from yoloswap.probe import runs_at

    size = requested or trained
    if size != trained and not runs_at(preset, (size, size)):
        raise UsageError(f"--img-size {size}: the backbone of {path} ({preset.name}) was built for {trained}x{trained} "
                         f"inputs and does not run at {size}x{size}; use --img-size {trained}")
    return size
