"""Evaluation: run the detector over a letterboxed split, map boxes back to the original images, score COCO mAP."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from yoloswap import ops
from yoloswap.engine.evaluator import CocoAccumulator, EvalImage


@dataclass
class EvalOutput:
    metrics: dict  # map, map50, map75, ... (+ val_<name>_loss per loss item when a loss was given)
    accumulator: CocoAccumulator
    previews: list = field(default_factory=list)  # (image HxWx3 uint8 letterboxed, dets (K,6), truth (M,5))


def autocast_for(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision on CUDA (``dtype`` bf16/fp16) or the CPU (bf16); a no-op for ``dtype`` None."""
    if device.type in ("cuda", "cpu") and dtype is not None:
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader,
    names,
    category_ids=None,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    conf: float = ops.EVAL_CONF,
    iou: float = ops.EVAL_IOU,
    loss_fn: Callable | None = None,
    previews: int = 0,
    on_batch: Callable[[], None] | None = None,
) -> EvalOutput:
    """COCO metrics of ``model`` (already on ``device``) over ``loader``'s dataset (letterboxed, not augmented).

    Detections come from the head's own ``decode``; ``loss_fn`` is the head's loss (its ``names`` name the items).
    """
    device = torch.device(device)
    samples = {s.image_id: s for s in loader.dataset.samples}
    acc = CocoAccumulator(names, category_ids)
    was_training = model.training
    model.eval()
    head = model.head
    loss_sum, batches, shown = None, 0, []
    try:
        for images, targets, metas in loader:
            x = images.to(device, non_blocking=True).float() / 255  # (B, 3, S, S) in [0, 1]
            with autocast_for(device, amp_dtype):
                outputs = model(x)
            outputs = [o.float() for o in outputs]
            if loss_fn is not None:
                _, items = loss_fn(outputs, targets.to(device))
                loss_sum = items if loss_sum is None else loss_sum + items
                batches += 1
            dets = ops.postprocess(head.decode(outputs), conf, iou)  # (B, P, 4+nc) rows -> per image (K, 6)
            for img, det, meta in zip(images, dets, metas):
                det = det.cpu()
                if len(shown) < previews:
                    shown.append((img.permute(1, 2, 0).numpy().copy(), det.clone(),
                                  letterboxed_truth(samples[meta["image_id"]], meta)))
                sample = samples[meta["image_id"]]
                acc.add(_eval_image(sample), to_original(det, meta))
            if on_batch is not None:
                on_batch()
    finally:
        model.train(was_training)
    metrics = acc.compute()
    if loss_sum is not None:
        means = (loss_sum / max(batches, 1)).tolist()
        metrics.update({f"val_{name}_loss": value for name, value in zip(loss_fn.names, means)})
    return EvalOutput(metrics, acc, shown)


def to_original(dets: torch.Tensor, meta: dict) -> torch.Tensor:
    """Undo the letterbox: ``x_orig = (x − pad) / ratio``, clipped to the original image."""
    out = dets.clone()
    pad_x, pad_y = meta["pad"]
    h, w = meta["orig_size"]
    out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) / meta["ratio"]).clamp(0, w)
    out[:, [1, 3]] = ((out[:, [1, 3]] - pad_y) / meta["ratio"]).clamp(0, h)
    return out


def letterboxed_truth(sample, meta: dict) -> np.ndarray:
    """Ground truth of ``sample`` in letterboxed pixels, (M, 5) [x1, y1, x2, y2, cls], crowd boxes left out."""
    keep = ~np.asarray(sample.crowd, dtype=bool)
    boxes = np.asarray(sample.boxes, dtype=np.float32).reshape(-1, 4)[keep] * meta["ratio"]
    boxes = boxes + np.array([*meta["pad"], *meta["pad"]], dtype=np.float32)
    return np.concatenate((boxes, np.asarray(sample.classes).reshape(-1)[keep, None].astype(np.float32)), axis=1)


def _eval_image(sample) -> EvalImage:
    return EvalImage(
        image_id=sample.image_id,
        width=sample.width,
        height=sample.height,
        boxes=np.asarray(sample.boxes),
        classes=np.asarray(sample.classes),
        crowd=np.asarray(sample.crowd),
    )
