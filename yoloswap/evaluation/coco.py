"""COCO box mAP, computed by a maintained COCO evaluation library rather than by our own code.

mAP is easy to get subtly wrong (interpolation, crowd handling, area ranges, max detections), and published
numbers are all COCO-protocol numbers. So yoloswap only converts its data into COCO dictionaries and lets
``faster-coco-eval`` (a C++ reimplementation of pycocotools' evaluation, with identical results and several
times faster) do the counting.

Category ids: when a data set came from COCO json its sparse category ids are passed in as ``category_ids``
(``category_ids[cls]`` is the id of contiguous class ``cls``), so saved predictions can be scored against the
original annotation file. Otherwise class ``cls`` gets id ``cls + 1``: COCO reserves 0, and several COCO tools
treat id 0 as background.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yoloswap.evaluation.metrics import Details, details_from_cocoeval, empty_details

# What `evaluate_coco` returns when there is nothing to measure (no GT boxes, or no predictions).
_ZERO_METRICS = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100")


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields explicitly
class EvalImage:
    """One validation image's ground truth, in original-image pixels.

    ``crowd`` marks boxes that cover a crowd of objects: COCO neither rewards nor punishes detections on them.
    """

    image_id: int
    width: int
    height: int
    boxes: np.ndarray  # (n, 4) x1, y1, x2, y2 in pixels
    classes: np.ndarray  # (n,) contiguous class index
    crowd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # (n,) bool

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        crowd = np.asarray(self.crowd, dtype=bool).reshape(-1)
        if crowd.size == 0:
            crowd = np.zeros(len(boxes), dtype=bool)
        if not len(boxes) == len(classes) == len(crowd):
            raise ValueError(
                f"image {self.image_id}: {len(boxes)} boxes, {len(classes)} classes and {len(crowd)} crowd flags"
            )
        # Frozen dataclass: normalise the arrays through object.__setattr__ once, here.
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "crowd", crowd)


def category_id(cls: int, category_ids: Sequence[int] | None) -> int:
    """The COCO category id of contiguous class ``cls`` (see the module docstring for the rule)."""
    return int(category_ids[cls]) if category_ids is not None else int(cls) + 1


def coco_gt_dict(
    images: Sequence[EvalImage], names: Sequence[str], category_ids: Sequence[int] | None = None
) -> dict:
    """A COCO ground-truth dictionary (``images``, ``annotations``, ``categories``) for ``images``.

    Annotation ids start at 1 on purpose: COCO's matcher stores the matched GT id per detection and reads 0
    as "unmatched", so a GT with id 0 could never produce a true positive.
    """
    if category_ids is not None and len(category_ids) != len(names):
        raise ValueError(f"{len(category_ids)} category ids for {len(names)} class names")
    categories = [{"id": category_id(c, category_ids), "name": str(n)} for c, n in enumerate(names)]
    coco_images, annotations = [], []
    for image in images:
        coco_images.append({"id": int(image.image_id), "width": int(image.width), "height": int(image.height)})
        for box, cls, crowd in zip(image.boxes, image.classes, image.crowd):
            x1, y1, x2, y2 = (float(v) for v in box)
            w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(image.image_id),
                    "category_id": category_id(int(cls), category_ids),
                    "bbox": [x1, y1, w, h],
                    "area": w * h,  # COCO's small/medium/large split reads this field
                    "iscrowd": int(bool(crowd)),
                }
            )
    return {"images": coco_images, "annotations": annotations, "categories": categories}


def _as_numpy(dets: Any) -> np.ndarray:
    """Detections as a float64 (K, 6) array, whether they came as a torch tensor, array or list."""
    if hasattr(dets, "detach"):  # a torch tensor; avoids importing torch here
        dets = dets.detach().float().cpu().numpy()
    return np.asarray(dets, dtype=np.float64).reshape(-1, 6)


def detections_to_coco(image_id: int, dets: Any, category_ids: Sequence[int] | None = None) -> list[dict]:
    """Detections ``(K, 6) [x1, y1, x2, y2, score, cls]`` in image pixels as COCO results entries.

    Boxes are rounded to 1/1000 px and scores to 5 decimals: far below anything that changes an IoU test,
    and it keeps a saved predictions json small.
    """
    results = []
    for x1, y1, x2, y2, score, cls in _as_numpy(dets):
        results.append(
            {
                "image_id": int(image_id),
                "category_id": category_id(int(cls), category_ids),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(float(score), 5),
            }
        )
    return results


def _silent(*args: Any, **kwargs: Any) -> None:
    """A print function for the COCO library that prints nothing."""


def evaluate_coco(gt: dict, results: list[dict], verbose: bool = False) -> dict:
    """COCO box metrics of ``results`` against ``gt`` (see :func:`evaluate_coco_detailed`)."""
    return evaluate_coco_detailed(gt, results, verbose)[0]


def evaluate_coco_detailed(gt: dict, results: list[dict], verbose: bool = False) -> tuple[dict, Details]:
    """COCO box metrics of ``results`` against ``gt``.

    Returns ``map`` (AP@[.50:.95]), ``map50``, ``map75``, ``map_small/medium/large``, ``mar_1/10/100`` and
    ``per_class`` (class name -> AP@[.50:.95], only classes with ground truth), and ``precision``, ``recall``
    (means over classes at the F1-optimal confidence) and ``f1_conf`` (that confidence); with the
    :class:`~yoloswap.evaluation.metrics.Details` (per-class rows and curves) read from the same matching. Metrics that COCO leaves
    undefined (no ground truth at all) and the metrics of an empty prediction list are 0.0, so "best epoch"
    logic never sees -1 or NaN.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    has_gt = any(not a.get("iscrowd", 0) for a in gt.get("annotations", []))
    if not results or not has_gt:
        details = empty_details(gt)
        return {**{k: 0.0 for k in _ZERO_METRICS}, "per_class": {}, **_detail_scalars(details)}, details

    printer = print if verbose else _silent
    # The library keeps (and adds fields to) the dicts it is given; hand it copies.
    coco_gt = COCO(copy.deepcopy(gt), print_function=printer)
    coco_dt = coco_gt.loadRes(copy.deepcopy(results))
    coco_eval = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=printer)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()

    stats = [max(float(s), 0.0) for s in coco_eval.stats[:9]]  # -1 means "undefined" in COCO
    metrics: dict[str, Any] = dict(zip(_ZERO_METRICS, stats))

    # precision: (iou thresholds T, recall points R, categories K, area ranges A, max dets M); area 0 = all.
    precision = np.asarray(coco_eval.eval["precision"])
    names = {c["id"]: c["name"] for c in gt["categories"]}
    per_class = {}
    for k, cat in enumerate(coco_eval.params.catIds):
        p = precision[:, :, k, 0, -1]  # (T, R)
        if (p > -1).any():
            per_class[names[cat]] = float(p[p > -1].mean())
    metrics["per_class"] = per_class
    details = details_from_cocoeval(coco_eval, gt, metrics)
    metrics.update(_detail_scalars(details))
    return metrics, details


def _detail_scalars(details: Details) -> dict:
    return {"precision": details.overall.precision, "recall": details.overall.recall, "f1_conf": details.best_conf}


class CocoAccumulator:
    """Collects ground truth and detections image by image during validation, then scores them once.

    Detections must already be in the image's original pixel coordinates (undo the letterbox first).
    """

    def __init__(self, names: Sequence[str], category_ids: Sequence[int] | None = None) -> None:
        self.names = list(names)
        self.category_ids = list(category_ids) if category_ids is not None else None
        self._images: list[EvalImage] = []
        self._results: list[dict] = []
        self.details: Details | None = None  # set by compute(): per-class rows and curves

    def __len__(self) -> int:
        return len(self._images)

    def add(self, image: EvalImage, dets: Any) -> None:
        """Record one image's ground truth and its detections ``(K, 6) [x1, y1, x2, y2, score, cls]``."""
        self._images.append(image)
        self._results.extend(detections_to_coco(image.image_id, dets, self.category_ids))

    def gt_dict(self) -> dict:
        """The COCO ground-truth dictionary of every image added so far."""
        return coco_gt_dict(self._images, self.names, self.category_ids)

    def results(self) -> list[dict]:
        """Every detection added so far in COCO results format (ready for ``json.dump``)."""
        return list(self._results)

    def compute(self, verbose: bool = False) -> dict:
        """COCO metrics over everything added so far (see :func:`evaluate_coco`)."""
        metrics, self.details = evaluate_coco_detailed(self.gt_dict(), self._results, verbose=verbose)
        return metrics
