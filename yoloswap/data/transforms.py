"""YOLOv5's training augmentation and evaluation letterbox, on numpy arrays.

Images are (H, W, 3) uint8 RGB; boxes are (n, 4) float32 x1 y1 x2 y2 in pixels of the current image; classes
are (n,) int64 and travel with their boxes. Every geometric step returns boxes already clipped to its output and
filtered by :func:`keep_boxes`, so a box that fell mostly outside the picture never becomes a target.
Randomness comes only from the ``rng`` argument, which is what makes a run repeatable from its seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

import math
from dataclasses import dataclass

import cv2
import numpy as np

from yoloswap.errors import ConfigError

# OpenCV's own thread pool does not survive fork(): DataLoader workers forked after the parent ran a parallel
# cv2 call hang forever. Parallelism comes from the workers instead, so cv2 runs single-threaded. This must
# happen before the first cv2 call in the process, hence at import (synthetic.py does the same).
cv2.setNumThreads(0)

PAD_VALUE = 114  # grey used for letterbox and mosaic borders, as YOLOv5
MIN_BOX_SIDE = 2.0  # pixels
MIN_AREA_KEPT = 0.10  # of the box's area before the step (after scaling)
MAX_ASPECT = 20.0


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation strengths; the defaults are YOLOv5's from-scratch recipe.

    ``hsv_*`` are maximum relative changes (hue as a fraction of the colour circle); ``degrees``/``shear`` are
    maximum angles; ``translate`` is a fraction of the image side; ``scale`` gives a zoom in [1-scale, 1+scale];
    ``fliplr`` and ``mosaic`` are probabilities.
    """

    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0

    def __post_init__(self) -> None:
        for name in ("hsv_h", "hsv_s", "hsv_v", "translate", "fliplr", "mosaic"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"augment.{name} must be in [0, 1], got {value}")
        if not 0.0 <= self.scale < 1.0:
            raise ConfigError(f"augment.scale must be in [0, 1) (zoom 1±scale), got {self.scale}")
        if not 0.0 <= self.degrees <= 180.0:
            raise ConfigError(f"augment.degrees must be in [0, 180], got {self.degrees}")
        if not 0.0 <= self.shear < 90.0:
            raise ConfigError(f"augment.shear must be in [0, 90), got {self.shear}")


# ----------------------------------------------------------------------------------------------- boxes


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """(n, 4) x1 y1 x2 y2 → (n, 4) cx cy w h."""
    out = np.empty_like(boxes)
    out[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2
    out[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2
    out[:, 2] = boxes[:, 2] - boxes[:, 0]
    out[:, 3] = boxes[:, 3] - boxes[:, 1]
    return out


def clip_boxes(boxes: np.ndarray, width: float, height: float, x0: float = 0.0, y0: float = 0.0) -> np.ndarray:
    """Clip (n, 4) xyxy boxes to the window [x0, width] × [y0, height] (a copy)."""
    out = boxes.copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(x0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(y0, height)
    return out


def keep_boxes(before: np.ndarray, after: np.ndarray, area_gain: float = 1.0) -> np.ndarray:
    """(n,) bool: which boxes survive a geometric step.

    ``before`` are the boxes going in, ``after`` the transformed and clipped ones, ``area_gain`` how much the step
    scales areas. A box stays if it is still more than 2 px wide and high, keeps at least 10% of its (scaled)
    area, and is not a sliver (aspect < 20).
    """
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    eps = 1e-9
    aspect = np.maximum(w1 / (h1 + eps), h1 / (w1 + eps))
    area_kept = (w1 * h1) / (w0 * h0 * area_gain + eps)
    return (w1 > MIN_BOX_SIDE) & (h1 > MIN_BOX_SIDE) & (area_kept >= MIN_AREA_KEPT) & (aspect < MAX_ASPECT)


# ----------------------------------------------------------------------------------------------- resize, letterbox


def resize_long_side(img: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``size`` (ratio kept); returns the image and the gain applied.

    INTER_AREA when shrinking (no aliasing on big photos), INTER_LINEAR when enlarging.
    """
    h, w = img.shape[:2]
    ratio = size / max(h, w)
    return resize_to(img, *long_side_size(w, h, size)), ratio


def long_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is ``size``."""
    ratio = size / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def resize_to(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to ``width`` × ``height``: INTER_AREA when shrinking, INTER_LINEAR when enlarging, as is when equal."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def pad_to_square(img: np.ndarray, size: int, value: int = PAD_VALUE) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre an image no larger than ``size`` on a ``size``×``size`` canvas; returns it and (pad_left, pad_top)."""
    h, w = img.shape[:2]
    left, top = (size - w) // 2, (size - h) // 2
    canvas = np.full((size, size, 3), value, dtype=np.uint8)  # (S, S, 3)
    canvas[top : top + h, left : left + w] = img
    return canvas, (left, top)


def letterbox(img: np.ndarray, size: int, value: int = PAD_VALUE) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Keep-ratio resize to fit ``size``, then centre-pad to a square.

    Returns ``(image, ratio, (pad_left, pad_top))``; a point maps back to the input as ``(x - pad_left) / ratio``.
    """
    resized, ratio = resize_long_side(img, size)
    out, pad = pad_to_square(resized, size, value)
    return out, ratio, pad


# ----------------------------------------------------------------------------------------------- geometry


def hflip(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; x1' = W - x2, x2' = W - x1."""
    w = img.shape[1]
    out = boxes.copy()
    out[:, 0], out[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return cv2.flip(img, 1), out


def affine_matrix(
    rng: np.random.Generator,
    in_size: tuple[int, int],
    out_size: int,
    degrees: float,
    translate: float,
    scale: float,
    shear: float,
) -> np.ndarray:
    """A random 3×3 matrix: centre the input, rotate+scale, shear, then move to the output centre ± translate."""
    in_w, in_h = in_size
    centre = np.array([[1, 0, -in_w / 2], [0, 1, -in_h / 2], [0, 0, 1]], dtype=np.float64)
    angle = rng.uniform(-degrees, degrees)
    gain = rng.uniform(1 - scale, 1 + scale)
    rotate = np.eye(3)
    rotate[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=gain)
    sh = np.eye(3)
    sh[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    sh[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    move = np.eye(3)
    move[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_size
    move[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_size
    return move @ sh @ rotate @ centre  # applied right to left


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Boxes after a 3×3 affine: the axis-aligned hull of the four transformed corners."""
    n = len(boxes)
    if n == 0:
        return boxes.copy()
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(n * 4, 2)  # (4n, 2): TL, TR, BR, BL
    ones = np.ones((n * 4, 1), dtype=np.float64)
    moved = (np.concatenate([corners, ones], axis=1) @ matrix.T)[:, :2].reshape(n, 4, 2)  # (n, 4, 2)
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1).astype(np.float32)  # (n, 4)


def random_affine(
    img: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    rng: np.random.Generator,
    aug: AugmentConfig,
    out_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random rotate/scale/shear/translate of ``img`` into an ``out_size`` square (grey where nothing lands).

    A 2S mosaic goes in and comes out S: the mosaic centre lands near the output centre, as in YOLOv5.
    """
    h, w = img.shape[:2]
    matrix = affine_matrix(rng, (w, h), out_size, aug.degrees, aug.translate, aug.scale, aug.shear)
    if (w, h) != (out_size, out_size) or not np.allclose(matrix, np.eye(3)):
        img = cv2.warpAffine(
            img, matrix[:2], dsize=(out_size, out_size), flags=cv2.INTER_LINEAR,
            borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
        )  # fmt: skip
    moved = clip_boxes(warp_boxes(boxes, matrix), out_size, out_size)
    keep = keep_boxes(boxes, moved, area_gain=abs(np.linalg.det(matrix[:2, :2])))
    return img, moved[keep], classes[keep]


def mosaic4(
    tiles: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four (image, boxes, classes) tiles, each with long side ≤ ``size``, around a random centre on 2S × 2S.

    Tile k is cut so that it touches the centre from the top-left, top-right, bottom-left, bottom-right. Boxes are
    clipped to the part of their own tile that stays visible, not merely to the canvas.
    """
    s2 = 2 * size
    canvas = np.full((s2, s2, 3), PAD_VALUE, dtype=np.uint8)  # (2S, 2S, 3)
    xc = int(rng.uniform(0.5 * size, 1.5 * size))
    yc = int(rng.uniform(0.5 * size, 1.5 * size))
    all_boxes, all_classes = [], []
    for k, (img, boxes, classes) in enumerate(tiles):
        h, w = img.shape[:2]
        # Canvas window (x1, y1, x2, y2) the tile occupies, anchored at the centre.
        x1 = max(xc - w, 0) if k in (0, 2) else xc
        x2 = xc if k in (0, 2) else min(xc + w, s2)
        y1 = max(yc - h, 0) if k in (0, 1) else yc
        y2 = yc if k in (0, 1) else min(yc + h, s2)
        # Matching window inside the tile: the part nearest the centre.
        ix1 = w - (x2 - x1) if k in (0, 2) else 0
        iy1 = h - (y2 - y1) if k in (0, 1) else 0
        canvas[y1:y2, x1:x2] = img[iy1 : iy1 + (y2 - y1), ix1 : ix1 + (x2 - x1)]
        shifted = boxes + np.array([x1 - ix1, y1 - iy1, x1 - ix1, y1 - iy1], dtype=np.float32)
        clipped = clip_boxes(shifted, x2, y2, x1, y1)
        keep = keep_boxes(shifted, clipped)
        all_boxes.append(clipped[keep])
        all_classes.append(classes[keep])
    return canvas, np.concatenate(all_boxes).reshape(-1, 4), np.concatenate(all_classes)


# ----------------------------------------------------------------------------------------------- colour


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    """Random hue shift and saturation/value gains, through lookup tables (fast on uint8).

    Hue is shifted by up to ±``hgain`` of the colour circle; YOLOv5 multiplies hue by a gain instead, which moves
    reds barely and blues a lot. Saturation and value are multiplied by 1 ± gain, as YOLOv5.
    """
    if hgain == 0 and sgain == 0 and vgain == 0:
        return img
    dh, gs, gv = rng.uniform(-1, 1, 3) * np.array([hgain, sgain, vgain]) + np.array([0.0, 1.0, 1.0])
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))  # OpenCV hue is 0..179
    x = np.arange(256, dtype=np.float64)
    lut_h = np.mod(x + dh * 180.0, 180.0).astype(np.uint8)
    lut_s = np.clip(x * gs, 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gv, 0, 255).astype(np.uint8)
    # split + three single-channel tables beat one three-channel table (0.40 vs 0.49 ms at 640 px)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def to_original(dets: torch.Tensor, meta: dict) -> torch.Tensor:
    """Undo the letterbox: ``x_orig = (x − pad) / ratio``, clipped to the original image."""
    out = dets.clone()
    pad_x, pad_y = meta["pad"]
    h, w = meta["orig_size"]
    out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) / meta["ratio"]).clamp(0, w)
    out[:, [1, 3]] = ((out[:, [1, 3]] - pad_y) / meta["ratio"]).clamp(0, h)
    return out
