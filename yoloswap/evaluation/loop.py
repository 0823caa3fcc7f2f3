"""The one evaluation loop: any detector's ``infer`` over a letterboxed split, boxes mapped back to the original
images, COCO mAP. A Detector during training, a ``.pt`` checkpoint, an ``.onnx`` or a ``.torchscript`` file all go
through :func:`evaluate`, always in fp32, so a run's final mAP and ``val`` of its checkpoint agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from yoloswap import ops
from yoloswap.data.transforms import to_original
from yoloswap.evaluation.coco import CocoAccumulator, EvalImage


@dataclass
class EvalOutput:
    metrics: dict  # map, map50, map75, ... (+ val_<name>_loss per loss item when a loss was given)
    accumulator: CocoAccumulator
    previews: list = field(default_factory=list)  # (image HxWx3 uint8 letterboxed, dets (K,6), truth (M,5))


@torch.no_grad()
def evaluate(
    model,
    loader,
    names,
    category_ids=None,
    device: torch.device | str = "cpu",
    conf: float = ops.EVAL_CONF,
    iou: float = ops.EVAL_IOU,
    loss_fn: Callable | None = None,
    previews: int = 0,
    on_batch: Callable[[], None] | None = None,
) -> EvalOutput:
    """COCO metrics of ``model`` over ``loader``'s dataset (letterboxed, not augmented).

    ``model`` is anything with ``infer(images01 (B, 3, H, W) in [0, 1]) -> (B, P, 4 + nc)`` rows: a Detector (on
    ``device``) or a runtime (deploy/runtimes.py). With ``loss_fn`` (the head's loss, whose ``names`` name the
    items) ``model`` must be a Detector: its raw outputs give the validation losses too.
    """
    device = torch.device(device)
    samples = {s.image_id: s for s in loader.dataset.samples}
    acc = CocoAccumulator(names, category_ids)
    was_training = model.training
    model.eval()
    loss_sum, batches, shown = None, 0, []
    try:
        for images, targets, metas in loader:
            x = images.to(device, non_blocking=True).float() / 255  # (B, 3, S, S) in [0, 1]
            if loss_fn is not None:
                outputs = [o.float() for o in model(x)]
                _, items = loss_fn(outputs, targets.to(device))
                loss_sum = items if loss_sum is None else loss_sum + items
                batches += 1
                rows = model.head.decode(outputs)
            else:
                rows = model.infer(x)
            dets = ops.postprocess(rows.float(), conf, iou)  # (B, P, 4+nc) rows -> per image (K, 6)
            for img, det, meta in zip(images, dets, metas):
                det = det.cpu()
                sample = samples[meta["image_id"]]
                if len(shown) < previews:
                    shown.append((img.permute(1, 2, 0).numpy().copy(), det.clone(), letterboxed_truth(sample, meta)))
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
