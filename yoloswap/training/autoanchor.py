"""AutoAnchor: before training, fit the anchor-based head's anchors to the training boxes when they do not fit.

YOLOv5's rule: a box can be learned by an anchor when neither side differs from the anchor's by more than a factor
``THRESHOLD`` (the loss matches on exactly that ratio). The best possible recall (BPR) is the share of training
boxes, at the training size, that at least one anchor can learn. Below ``MIN_BPR`` new anchors are found by
k-means on the box sizes, refined by a short seeded evolution, and kept only if they recall more. The anchors are
a buffer of the head, so the result travels in every checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

THRESHOLD = 4.0  # the loss's anchor_t: largest side ratio at which an anchor still learns a box
MIN_BPR = 0.98
GENERATIONS = 300
MAX_BOXES = 50_000  # k-means and evolution run on a seeded sample this large at most; BPR always uses all
MIN_SIDE = 2.0  # pixels; smaller boxes are noise to k-means


def training_box_sizes(samples: Sequence, img_size: int, seed: int = 0) -> np.ndarray:
    """(n, 2) widths and heights in pixels as training sees them: each image resized so its long side is
    ``img_size``, times a random 0.9-1.1 for scale augmentation (as YOLOv5 measures); crowd boxes left out."""
    sizes = []
    for s in samples:
        boxes = np.asarray(s.boxes, dtype=np.float64).reshape(-1, 4)
        keep = ~np.asarray(s.crowd, dtype=bool).reshape(-1) if len(boxes) else np.zeros(0, dtype=bool)
        if keep.any():
            sizes.append((boxes[keep, 2:4] - boxes[keep, 0:2]) * img_size / max(s.width, s.height))
    if not sizes:
        return np.zeros((0, 2))
    wh = np.concatenate(sizes)
    return wh * np.random.default_rng(seed).uniform(0.9, 1.1, size=(len(wh), 1))


def _ratios(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(n, k): for each box and anchor the worse of the two side ratios, as a fraction in (0, 1]."""
    r = wh[:, None, :] / anchors[None, :, :]
    return np.minimum(r, 1 / r).min(axis=2)


def best_possible_recall(anchors: np.ndarray, wh: np.ndarray, threshold: float = THRESHOLD) -> float:
    """Share of boxes that at least one anchor can learn (side ratios within ``threshold``)."""
    if len(wh) == 0:
        return 1.0
    return float((_ratios(wh, anchors).max(axis=1) > 1 / threshold).mean())


def _fitness(anchors: np.ndarray, wh: np.ndarray, threshold: float) -> float:
    """What evolution maximises: mean best ratio over boxes that some anchor can learn (0 for the others)."""
    best = _ratios(wh, anchors).max(axis=1)
    return float((best * (best > 1 / threshold)).mean())


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    """Plain Lloyd's k-means with k-means++ seeding."""
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = ((points[:, None] - np.asarray(centres)[None]) ** 2).sum(-1).min(axis=1)
        pick = rng.choice(len(points), p=d2 / d2.sum()) if d2.sum() > 0 else rng.integers(len(points))
        centres.append(points[pick])
    centres = np.asarray(centres, dtype=np.float64)
    for _ in range(iterations):
        nearest = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(axis=1)
        for j in range(k):
            members = points[nearest == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    return centres


def evolve_anchors(wh: np.ndarray, n: int = 9, threshold: float = THRESHOLD, generations: int = GENERATIONS,
                   seed: int = 0) -> np.ndarray:
    """(n, 2) anchors for box sizes ``wh``, smallest area first: k-means on whitened sizes, then a genetic
    refinement that keeps a random multiplicative mutation whenever it raises :func:`_fitness`."""
    rng = np.random.default_rng(seed)
    wh = wh[(wh >= MIN_SIDE).all(axis=1)]
    if len(wh) > MAX_BOXES:
        wh = wh[rng.choice(len(wh), MAX_BOXES, replace=False)]
    if len(wh) < n:  # too few boxes to cluster: repeat them
        wh = np.concatenate([wh] * (n // max(len(wh), 1) + 1)) if len(wh) else np.full((n, 2), MIN_SIDE)
    scale = wh.std(axis=0)
    scale[scale == 0] = 1.0
    anchors = _kmeans(wh / scale, n, rng) * scale
    best = _fitness(anchors, wh, threshold)
    for _ in range(generations):
        change = np.ones_like(anchors)
        while (change == 1).all():  # mutate at least one value
            change = ((rng.random(anchors.shape) < 0.9) * rng.random() * rng.standard_normal(anchors.shape) * 0.1 + 1)
            change = change.clip(0.3, 3.0)
        candidate = (anchors * change).clip(min=MIN_SIDE)
        score = _fitness(candidate, wh, threshold)
        if score > best:
            best, anchors = score, candidate
    return anchors[np.argsort(anchors.prod(axis=1))]


def check_anchors(head: torch.nn.Module, plan, samples: Sequence, img_size: int,
                  log: Callable[[str], object] = print, seed: int = 0):
    """Measure the head's anchors on the training boxes; evolve and install better ones when BPR < ``MIN_BPR``.

    Heads without anchors (anchor-free) are left alone. Returns ``plan`` with the anchors now in the head, so the
    run's config records them. Anchors are written in place: a loss holding the buffer sees the new values.
    """
    anchors_buffer = getattr(head, "anchors", None)
    if not isinstance(anchors_buffer, torch.Tensor):
        return plan
    wh = training_box_sizes(samples, img_size, seed)
    if len(wh) == 0:
        log("autoanchor: no training boxes; anchors unchanged")
        return plan
    current = anchors_buffer.detach().cpu().double().reshape(-1, 2).numpy()
    bpr = best_possible_recall(current, wh)
    if bpr >= MIN_BPR:
        log(f"autoanchor: best possible recall {bpr:.4f} of {len(wh)} training boxes; the anchors fit the data")
        return plan
    log(f"autoanchor: best possible recall {bpr:.4f} is below {MIN_BPR}; evolving anchors for {len(wh)} boxes")
    new = evolve_anchors(wh, n=len(current), seed=seed)
    new_bpr = best_possible_recall(new, wh)
    if new_bpr <= bpr:
        log(f"autoanchor: evolved anchors recall {new_bpr:.4f}, no better; kept the original anchors")
        return plan
    with torch.no_grad():
        anchors_buffer.copy_(torch.as_tensor(new, dtype=anchors_buffer.dtype).view_as(anchors_buffer))
    levels = anchors_buffer.detach().cpu().tolist()
    shown = [[[round(v, 1) for v in a] for a in lv] for lv in levels]
    log(f"autoanchor: new anchors (pixels, stride 8 first) {shown}; best possible recall {bpr:.4f} -> {new_bpr:.4f}")
    return dataclasses.replace(plan, anchors=tuple(tuple(tuple(float(v) for v in a) for a in lv) for lv in levels))
