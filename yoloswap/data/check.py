"""The data check: what a data set holds, as training would read it, before anyone trains on it.

Per split: images, boxes, boxes per class, images without boxes, box sizes (pixels of the image as read, and
relative to it), boxes ignored (COCO crowd, VOC difficult) and what would be skipped or dropped and why. The
numbers come from the same scan training uses (and its cache), so what the check says is what training gets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yoloswap.data.formats.common import DataConfig, Sample, Split


def label_arrays(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """Training boxes (crowd/difficult left out) as classes (n,) and ``cx cy w h`` relative to their image (n, 4)."""
    classes, boxes = [np.zeros(0, np.int64)], [np.zeros((0, 4), np.float32)]
    for s in samples:
        keep = ~np.asarray(s.crowd, bool)
        b = np.asarray(s.boxes, np.float32).reshape(-1, 4)[keep]
        scale = np.array([s.width, s.height, s.width, s.height], np.float32)
        boxes.append(np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1) / scale)
        classes.append(np.asarray(s.classes, np.int64)[keep])
    return np.concatenate(classes), np.concatenate(boxes)


def split_summary(split: Split, names: Sequence[str]) -> dict:
    """One split's counts; box sizes as medians in pixels and relative to the image."""
    samples = split.samples
    classes, rel = label_arrays(samples)
    px = [np.asarray(s.boxes, np.float32).reshape(-1, 4)[~np.asarray(s.crowd, bool)] for s in samples]
    px_all = np.concatenate(px) if px else np.zeros((0, 4), np.float32)
    wh = px_all[:, 2:] - px_all[:, :2]
    counts = np.bincount(classes, minlength=len(names))
    return {
        "images": len(samples),
        "boxes": int(len(classes)),
        "per_class": {name: int(n) for name, n in zip(names, counts)},
        "images_without_boxes": sum(1 for b in px if len(b) == 0),
        "ignored_boxes": int(sum(int(np.asarray(s.crowd, bool).sum()) for s in samples)),
        "median_box_wh": [round(float(v), 1) for v in np.median(wh, axis=0)] if len(wh) else None,
        "median_box_wh_relative": [round(float(v), 4) for v in np.median(rel[:, 2:], axis=0)] if len(rel) else None,
        "smallest_box_wh": [round(float(v), 1) for v in wh.min(axis=0)] if len(wh) else None,
        "skipped": list(split.skipped),
        "dropped": list(split.dropped),
    }


def check_data(cfg: DataConfig, splits: Sequence[str] = ("train", "val", "test")) -> dict:
    """The whole report: ``{"splits": {name: summary}, "layout", "names", "notes"}`` for the splits it has."""
    present = [s for s in splits if s in cfg.split_sources]
    return {
        "splits": {name: split_summary(cfg.split(name), cfg.names) for name in present},
        "layout": cfg.layout,
        "format": cfg.format,
        "source": str(cfg.source),
        "names": list(cfg.names),
        "notes": list(cfg.notes),
    }
