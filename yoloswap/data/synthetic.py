"""The built-in data set: coloured shapes on cluttered backgrounds, generated from a fixed seed.

It exists so that ``yoloswap train`` works on a fresh machine with no download, and so tests and benchmarks have
data whose answer is known. Class is decided by shape only (colours, sizes, aspect and rotation are random within
every class), and backgrounds carry gradients, soft blobs, texture noise and lines, so a detector has to learn
shapes rather than colours: mAP climbs within minutes on a CPU but does not start at 1.

Every image is drawn from its own seed ``(seed, split, index)``, so a set is identical byte for byte wherever it
is generated (same OpenCV/libjpeg), and an interrupted generation never leaves a half-written set behind: it is
written to a temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from yoloswap.errors import DataError
from yoloswap.home import yoloswap_home

cv2.setNumThreads(0)  # see transforms.py: a cv2 thread pool in the parent hangs forked DataLoader workers

CLASS_NAMES = ("circle", "square", "triangle", "cross", "star", "ring")
BUILTIN_VERSION = "builtin-v1"
MANIFEST = "yoloswap-dataset.json"
_SPLITS = ("train", "val")
_OUR_ENTRIES = {"images", "labels", "data.yaml", MANIFEST}
_JPEG_QUALITY = 92
_MIN_CONTRAST = 90.0  # RGB distance between an object's colour and the background under it
_MAX_OVERLAP = 0.15  # intersection / smaller box area allowed between two objects


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered image and its ground truth."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: np.ndarray  # (n, 4) float32 x1 y1 x2 y2, pixels, tight around each drawn shape
    classes: np.ndarray  # (n,) int64 index into CLASS_NAMES


# ----------------------------------------------------------------------------------------------- rendering


def render_scene(
    seed: int | Sequence[int],
    size: int = 256,
    objects: tuple[int, int] = (1, 6),
    object_size: tuple[float, float] = (16.0, 96.0),
    with_objects: bool = True,
) -> Scene:
    """Draw one image. ``with_objects=False`` draws the very same background and clutter without the shapes.

    Background, shapes and the clutter drawn on top use independent random streams, which is what keeps the
    background identical with and without shapes.
    """
    bg_rng, obj_rng, top_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    img = _background(bg_rng, size)  # (S, S, 3) float32
    boxes, classes = [], []
    n = int(obj_rng.integers(objects[0], objects[1] + 1))
    for _ in range(n):
        placed = _place_object(obj_rng, img, boxes, object_size)
        if placed is None:
            continue
        cls, alpha, colour, box = placed
        if with_objects:  # blend inside the box only (the mask is zero elsewhere)
            x1, y1, x2, y2 = (int(v) for v in box)
            a = alpha[y1:y2, x1:x2, None]
            img[y1:y2, x1:x2] = img[y1:y2, x1:x2] * (1 - a) + colour.astype(np.float32) * a
        boxes.append(box)
        classes.append(cls)
    img = _clutter_on_top(top_rng, img)
    return Scene(
        image=np.clip(np.rint(img), 0, 255).astype(np.uint8),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        classes=np.asarray(classes, dtype=np.int64),
    )


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Linear gradient between two colours, soft colour blobs, thin lines, low- and high-frequency noise."""
    # Everything smooth is drawn on a quarter-size grid and upsampled: same look, a tenth of the work.
    low = max(8, size // 4)
    yy, xx = (g.astype(np.float32) * (size / low) for g in np.mgrid[0:low, 0:low])
    angle = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    c0, c1 = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
    img = c0 * (1 - t[:, :, None]) + c1 * t[:, :, None]  # (S/4, S/4, 3)
    for _ in range(int(rng.integers(2, 7))):  # soft blobs: round-ish but blurry, unlike the crisp shapes
        cx, cy = rng.uniform(0, size, 2)
        sigma = rng.uniform(0.04, 0.2) * size
        weight = rng.uniform(0.3, 0.8) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / np.float32(2 * sigma**2))
        img = img * (1 - weight[:, :, None]) + rng.uniform(0, 255, 3).astype(np.float32) * weight[:, :, None]
    grid = rng.normal(0, rng.uniform(5, 20), (size // 16, size // 16, 3)).astype(np.float32)
    img = img + cv2.resize(grid, (low, low), interpolation=cv2.INTER_CUBIC)  # blotchy texture
    img = cv2.resize(img.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)  # (S, S, 3)
    for _ in range(int(rng.integers(3, 11))):
        p0, p1 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), colour, int(rng.integers(1, 4)),
                 cv2.LINE_AA)  # fmt: skip
    return img


def _clutter_on_top(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """A few thin lines across everything (objects included) and per-pixel noise."""
    size = img.shape[0]
    img = np.ascontiguousarray(img, dtype=np.float32)
    for _ in range(int(rng.integers(0, 3))):
        p0, p1 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), colour, 1, cv2.LINE_AA)
    sigma = np.float32(rng.uniform(2, 10))
    return img + rng.standard_normal(img.shape, dtype=np.float32) * sigma


def _place_object(
    rng: np.random.Generator, img: np.ndarray, taken: list[np.ndarray], object_size: tuple[float, float]
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray] | None:
    """Pick a class, shape, spot and colour that does not hide earlier objects; None after 20 failed tries."""
    size = img.shape[0]
    cls = int(rng.integers(0, len(CLASS_NAMES)))
    smallest, largest = object_size[0], min(object_size[1], 0.65 * size)
    for _ in range(20):
        extent = rng.uniform(smallest, largest)  # long side of the shape before rotation
        aspect = rng.uniform(0.7, 1.4)
        w, h = (extent, extent / aspect) if aspect >= 1 else (extent * aspect, extent)
        reach = 0.72 * extent + 1  # farthest a corner can get from the centre once rotated: stay in the frame
        cx, cy = rng.uniform(reach, size - reach, 2)
        alpha = _shape_mask(rng, cls, size, cx, cy, w, h)
        ys, xs = np.nonzero(alpha >= 0.5)
        if len(xs) < 16:
            continue
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
        if not smallest <= max(box[2] - box[0], box[3] - box[1]) <= largest:
            continue  # rotation made it bigger (or a thin triangle smaller) than the promised range
        if any(_overlap(box, other) > _MAX_OVERLAP for other in taken):
            continue
        colour = _contrasting_colour(rng, img[alpha >= 0.5].mean(axis=0))
        if colour is None:
            continue
        return cls, alpha * rng.uniform(0.85, 1.0), colour, box
    return None


def _shape_mask(rng: np.random.Generator, cls: int, size: int, cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """(S, S) float32 coverage in [0, 1] of one anti-aliased shape centred at (cx, cy)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    angle = rng.uniform(0, 360)
    name = CLASS_NAMES[cls]
    centre = (round(cx * 16), round(cy * 16))  # 4 fractional bits for sub-pixel drawing
    axes = (round(w / 2 * 16), round(h / 2 * 16))
    if name == "circle":
        cv2.ellipse(mask, centre, axes, angle, 0, 360, 255, -1, cv2.LINE_AA, 4)
    elif name == "ring":
        thick = max(2.0, rng.uniform(0.15, 0.3) * min(w, h) / 2)
        inner = (round((w - thick) / 2 * 16), round((h - thick) / 2 * 16))
        cv2.ellipse(mask, centre, inner, angle, 0, 360, 255, round(thick), cv2.LINE_AA, 4)
    else:
        if name == "square":
            angle = rng.uniform(-20, 20)  # boxes stay square-ish boxes
            pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        elif name == "triangle":
            pts = [(math.cos(a), math.sin(a)) for a in np.radians([-90, 30, 150])]
        elif name == "cross":
            k = rng.uniform(0.25, 0.4)  # arm half-thickness relative to half-size
            pts = [(-k, -1), (k, -1), (k, -k), (1, -k), (1, k), (k, k), (k, 1), (-k, 1), (-k, k), (-1, k),
                   (-1, -k), (-k, -k)]  # fmt: skip
        else:  # star
            inner_r = rng.uniform(0.38, 0.5)
            pts = [
                ((1 if i % 2 == 0 else inner_r) * math.cos(a), (1 if i % 2 == 0 else inner_r) * math.sin(a))
                for i, a in enumerate(np.radians(np.arange(10) * 36 - 90))
            ]
        poly = np.asarray(pts, dtype=np.float64) * np.array([w / 2, h / 2])  # (k, 2) around the origin
        rad = math.radians(angle)
        rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])
        poly = poly @ rot.T + np.array([cx, cy])
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(iw * ih / max(smaller, 1e-6))


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray | None:
    for _ in range(10):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - under) >= _MIN_CONTRAST:
            return colour
    return None


# ----------------------------------------------------------------------------------------------- writing


def builtin_data_yaml(cache_dir: Path | None = None) -> Path:
    """The built-in set's data YAML, generating the set on first use (a few seconds)."""
    return write_demo_data(cache_dir if cache_dir is not None else yoloswap_home() / BUILTIN_VERSION)


def write_demo_data(
    out_dir: Path,
    num_train: int = 320,
    num_val: int = 80,
    img_size: int = 256,
    seed: int = 0,
) -> Path:
    """Write the synthetic set in Ultralytics layout under ``out_dir`` and return its ``data.yaml``.

    A complete set with the same parameters is reused as it is. A partial one of ours is replaced; any other
    non-empty folder is refused rather than touched.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    params = {"version": BUILTIN_VERSION, "seed": seed, "num_train": num_train, "num_val": num_val,
              "img_size": img_size, "names": list(CLASS_NAMES)}  # fmt: skip
    if _is_complete(out_dir, params):
        return out_dir / "data.yaml"
    if out_dir.exists() and any(out_dir.iterdir()):
        if not _looks_like_ours(out_dir):
            raise DataError(f"{out_dir}: folder exists and is not a yoloswap demo data set; choose another --out")
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.partial-"))
    try:
        counts = {"train": num_train, "val": num_val}
        for split_index, split in enumerate(_SPLITS):
            _write_split(tmp, split, split_index, counts[split], img_size, seed)
        (tmp / "data.yaml").write_text(_data_yaml_text(seed), encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")  # written last
        try:
            os.rename(tmp, out_dir)  # atomic; also replaces an empty folder
        except OSError:
            if not _is_complete(out_dir, params):  # else another process finished first: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "data.yaml"


def _write_split(root: Path, split: str, split_index: int, count: int, img_size: int, seed: int) -> None:
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for i in range(count):
        scene = render_scene((seed, split_index, i), size=img_size)
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])  # fmt: skip
        if not ok:
            raise DataError(f"{image_dir}: could not encode image {i}")
        (image_dir / f"{i:06d}.jpg").write_bytes(data.tobytes())
        (label_dir / f"{i:06d}.txt").write_text(_label_text(scene, img_size), encoding="ascii")


def _label_text(scene: Scene, size: int) -> str:
    lines = []
    for (x1, y1, x2, y2), cls in zip(scene.boxes.tolist(), scene.classes.tolist()):
        cx, cy, w, h = (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _data_yaml_text(seed: int) -> str:
    names = ", ".join(CLASS_NAMES)
    return (
        f"# yoloswap built-in synthetic shapes ({BUILTIN_VERSION}, seed {seed}); regenerate with "
        "`yoloswap demo-data --out DIR`\n"
        "path: .\n"
        "train: images/train\n"
        "val: images/val\n"
        f"names: [{names}]\n"
    )


def _is_complete(out_dir: Path, params: dict) -> bool:
    """The manifest matches and every image and label file is there."""
    try:
        if json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")) != params:
            return False
    except (OSError, ValueError):
        return False
    if not (out_dir / "data.yaml").is_file():
        return False
    for split in _SPLITS:
        want = params[f"num_{split}"]
        for sub, suffix in (("images", ".jpg"), ("labels", ".txt")):
            folder = out_dir / sub / split
            if not folder.is_dir() or sum(1 for p in folder.iterdir() if p.suffix == suffix) != want:
                return False
    return True


def _looks_like_ours(out_dir: Path) -> bool:
    """Our manifest and only our own files (and label caches) inside, so removing it cannot destroy user data."""
    return (out_dir / MANIFEST).is_file() and all(
        p.name in _OUR_ENTRIES or p.name.endswith(".cache.npz") for p in out_dir.iterdir()
    )


def _remove_stale_partials(out_dir: Path) -> None:
    """Temporary folders left by generations that were killed more than an hour ago."""
    for p in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        try:
            if time.time() - p.stat().st_mtime > 3600:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
