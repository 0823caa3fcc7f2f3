"""Metrics beyond mAP, read from the arrays the COCO evaluator already fills, so there is one matching of
detections to ground truth and every figure here agrees with COCO's AP by construction.

``accumulate()`` leaves, per IoU threshold, class, area range and max-detections setting, the (interpolated)
precision and the detection score at each of 101 recall points. At IoU 0.5 that is a class's PR curve, and the
score at each point says which confidence threshold reaches that recall: from it come precision, recall and F1 as
functions of the confidence, and the threshold where the mean F1 over classes peaks (the one to deploy at).

The confusion matrix is the one figure COCO does not count (it matches across classes): :func:`confusion_matrix`
does that, Ultralytics' way, at a deployment threshold (confidence 0.25, IoU 0.45 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CONF_GRID = np.linspace(0.0, 1.0, 101)  # confidences at which P, R and F1 are read
CONFUSION_CONF = 0.25  # Ultralytics' defaults for the confusion matrix
CONFUSION_IOU = 0.45


@dataclass
class ClassRow:
    """One line of the per-class table (``name`` "all" for the mean over classes)."""

    name: str
    images: int  # images with at least one (non-crowd) box of this class
    instances: int  # its (non-crowd) boxes
    precision: float  # at the F1-optimal confidence
    recall: float
    ap50: float
    ap: float  # AP@[.50:.95]

    def as_dict(self) -> dict:
        return {"class": self.name, "images": self.images, "instances": self.instances,
                "precision": self.precision, "recall": self.recall, "ap50": self.ap50, "ap50_95": self.ap}


@dataclass
class Details:
    """Everything ``val`` reports beyond the COCO summary numbers, and the curves the plots draw."""

    names: list[str]
    rows: list[ClassRow]  # one per class, in class order
    overall: ClassRow  # the "all" row
    best_conf: float  # confidence where the mean F1 peaks
    recall_points: np.ndarray = field(repr=False)  # (101,) COCO's recall thresholds
    pr: np.ndarray = field(repr=False)  # (K, 101) precision at IoU 0.5 per class; NaN for a class without boxes
    f1: np.ndarray = field(repr=False)  # (K, C) F1 per class at each CONF_GRID confidence; NaN: no boxes
    precision_at: np.ndarray = field(repr=False)  # (K, C)
    recall_at: np.ndarray = field(repr=False)  # (K, C)

    @property
    def mean_f1(self) -> np.ndarray:
        """(C,) F1 averaged over the classes that have ground truth (zeros when none has)."""
        return _mean_f1(self.f1)

    def as_dict(self) -> dict:
        """The JSON of ``val --json``'s ``classes`` list (the "all" row last)."""
        return {"classes": [r.as_dict() for r in (*self.rows, self.overall)], "f1_conf": self.best_conf}


def _mean_f1(f1: np.ndarray) -> np.ndarray:
    has = ~np.isnan(f1[:, 0]) if len(f1) else np.zeros(0, bool)
    return f1[has].mean(0) if has.any() else np.zeros(len(CONF_GRID))


def _counts(gt: dict) -> tuple[dict[int, int], dict[int, int]]:
    """Images and instances per category id, crowd boxes left out."""
    images: dict[int, set] = {}
    instances: dict[int, int] = {}
    for a in gt.get("annotations", []):
        if a.get("iscrowd", 0):
            continue
        images.setdefault(a["category_id"], set()).add(a["image_id"])
        instances[a["category_id"]] = instances.get(a["category_id"], 0) + 1
    return {k: len(v) for k, v in images.items()}, instances


def _curves_at_confidence(p: np.ndarray, s: np.ndarray, rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each CONF_GRID confidence, from one class's (101,) precision ``p`` and score ``s``
    per recall point ``rec``: at confidence c the detections kept reach the highest recall point whose score is
    at least c."""
    reached = s[None, :] >= np.maximum(CONF_GRID[:, None], 1e-12)  # (C, 101); score 0 = point never reached
    last = np.where(reached.any(1), reached.shape[1] - 1 - np.argmax(reached[:, ::-1], axis=1), -1)
    precision = np.where(last >= 0, p[np.maximum(last, 0)], 0.0)
    recall = np.where(last >= 0, rec[np.maximum(last, 0)], 0.0)
    return precision, recall


def details_from_cocoeval(coco_eval, gt: dict, metrics: dict) -> Details:
    """:class:`Details` from an evaluated and accumulated COCOeval over ``gt``; ``metrics`` holds its map/map50."""
    precision = np.asarray(coco_eval.eval["precision"])  # (T, R, K, A, M); area 0 = all, M -1 = 100 dets
    scores = np.asarray(coco_eval.eval["scores"])
    rec = np.asarray(coco_eval.params.recThrs, dtype=float)
    cat_ids = list(coco_eval.params.catIds)
    by_id = {c["id"]: c["name"] for c in gt["categories"]}
    k_count = len(cat_ids)
    pr = np.full((k_count, len(rec)), np.nan)
    p_at = np.full((k_count, len(CONF_GRID)), np.nan)
    r_at = np.full_like(p_at, np.nan)
    ap50 = np.zeros(k_count)
    ap = np.zeros(k_count)
    for k in range(k_count):
        p50 = precision[0, :, k, 0, -1]
        if not (p50 > -1).any():
            continue  # no ground truth of this class
        pr[k] = np.maximum(p50, 0.0)
        p_at[k], r_at[k] = _curves_at_confidence(pr[k], scores[0, :, k, 0, -1], rec)
        ap50[k] = float(pr[k].mean())
        every = precision[:, :, k, 0, -1]
        ap[k] = float(every[every > -1].mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p_at + r_at > 0, 2 * p_at * r_at / (p_at + r_at), 0.0)
    f1[np.isnan(p_at)] = np.nan
    return _assemble([by_id[c] for c in cat_ids], cat_ids, gt, rec, pr, f1, p_at, r_at, ap50, ap, metrics)


def _assemble(names, cat_ids, gt, rec, pr, f1, p_at, r_at, ap50, ap, metrics) -> Details:
    images, instances = _counts(gt)
    has = ~np.isnan(f1[:, 0]) if len(f1) else np.zeros(0, bool)
    mean_f1 = _mean_f1(f1)
    best = int(np.nonzero(mean_f1 >= mean_f1.max() - 1e-9)[0][-1])  # of equal F1s, the highest threshold
    rows = [ClassRow(n, images.get(c, 0), instances.get(c, 0), float(np.nan_to_num(p_at[k, best])),
                     float(np.nan_to_num(r_at[k, best])), float(ap50[k]), float(ap[k]))
            for k, (n, c) in enumerate(zip(names, cat_ids))]
    scored = [r for r, h in zip(rows, has) if h]
    overall = ClassRow("all", len(gt.get("images", [])), sum(instances.values()),
                       float(np.mean([r.precision for r in scored])) if scored else 0.0,
                       float(np.mean([r.recall for r in scored])) if scored else 0.0,
                       float(metrics.get("map50", 0.0)), float(metrics.get("map", 0.0)))
    return Details(list(names), rows, overall, float(CONF_GRID[best]) if mean_f1.max() > 0 else 0.0, rec, pr, f1, p_at, r_at)


def empty_details(gt: dict) -> Details:
    """The :class:`Details` of an evaluation with no predictions (or no ground truth): counts, and zeros."""
    cats = gt["categories"]
    k = len(cats)
    images, instances = _counts(gt)
    nan_or_zero = np.array([0.0 if instances.get(c["id"]) else np.nan for c in cats])
    curve = np.repeat(nan_or_zero[:, None], len(CONF_GRID), axis=1)
    rec = np.linspace(0.0, 1.0, 101)
    pr = np.repeat(nan_or_zero[:, None], len(rec), axis=1)
    return _assemble([c["name"] for c in cats], [c["id"] for c in cats], gt, rec, pr, curve, curve.copy(),
                     curve.copy(), np.zeros(k), np.zeros(k), {})


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes ``a`` (N, 4) and ``b`` (M, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def confusion_matrix(gt: dict, results: Sequence[dict], conf: float = CONFUSION_CONF,
                     iou: float = CONFUSION_IOU) -> np.ndarray:
    """(K + 1, K + 1) counts, ``m[true, predicted]``, the last row and column the background.

    Detections scoring at least ``conf`` are matched to ground truth of any class with IoU above ``iou``, the
    highest IoU first, each box and detection at most once. A matched pair counts at (its true class, the class
    predicted); a box left unmatched was missed (``m[true, background]``); a detection left unmatched is a false
    alarm (``m[background, predicted]``). Crowd boxes are left out.
    """
    index = {c["id"]: k for k, c in enumerate(gt["categories"])}
    bg = len(index)
    m = np.zeros((bg + 1, bg + 1), dtype=np.int64)
    truth: dict[int, list] = {im["id"]: [] for im in gt.get("images", [])}
    for a in gt.get("annotations", []):
        if not a.get("iscrowd", 0):
            truth.setdefault(a["image_id"], []).append(a)
    found: dict[int, list] = {}
    for r in results:
        if r["score"] >= conf:
            found.setdefault(r["image_id"], []).append(r)
    for image_id in set(truth) | set(found):
        g, d = truth.get(image_id, []), found.get(image_id, [])
        g_cls = np.array([index[a["category_id"]] for a in g], dtype=np.int64)
        d_cls = np.array([index[r["category_id"]] for r in d], dtype=np.int64)
        pairs = _match(_xyxy([a["bbox"] for a in g]), _xyxy([r["bbox"] for r in d]), iou)
        for gi, di in pairs:
            m[g_cls[gi], d_cls[di]] += 1
        np.add.at(m, (np.delete(g_cls, [p[0] for p in pairs]), bg), 1)
        np.add.at(m, (bg, np.delete(d_cls, [p[1] for p in pairs])), 1)
    return m


def _xyxy(boxes: list) -> np.ndarray:
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.concatenate((b[:, :2], b[:, :2] + b[:, 2:]), axis=1)


def _match(g: np.ndarray, d: np.ndarray, iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (truth index, detection index) with IoU above ``iou``, highest IoU first."""
    if not len(g) or not len(d):
        return []
    ious = _iou(g, d)
    gi, di = np.nonzero(ious > iou)
    order = np.argsort(-ious[gi, di], kind="stable")
    pairs, used_g, used_d = [], set(), set()
    for i in order:
        if gi[i] not in used_g and di[i] not in used_d:
            pairs.append((int(gi[i]), int(di[i])))
            used_g.add(gi[i])
            used_d.add(di[i])
    return pairs


def normalise_rows(m: np.ndarray) -> np.ndarray:
    """Each row of ``m`` divided by its sum: per true class, the share of its boxes predicted as each class."""
    sums = m.sum(1, keepdims=True)
    return np.where(sums > 0, m / np.maximum(sums, 1), 0.0)


def write_confusion_csv(m: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """``m`` as CSV: a ``true \\ predicted`` header of class names plus ``background``, one row per true class,
    first the counts, then the same rows normalised per true class (``kind`` column: count | share)."""
    import csv

    labels = [*names, "background"]
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "true \\ predicted", *labels])
        for kind, values in (("count", m), ("share", normalise_rows(m))):
            for label, row in zip(labels, values):
                writer.writerow([kind, label, *(int(v) if kind == "count" else f"{v:.4f}" for v in row)])
    return path
