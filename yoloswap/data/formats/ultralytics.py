"""The Ultralytics layout: a data YAML naming image folders or .txt lists, one ``class cx cy w h`` file per image.

::

    path: ../datasets/shapes        # relative to this YAML's folder; default: the YAML's folder
    train: images/train             # a folder, a .txt list of image paths, or a list of those (relative to path)
    val: images/val
    names: [circle, square]         # or {0: circle, 1: square}

Labels live in the parallel ``labels/`` tree (``images/x/a.jpg`` → ``labels/x/a.txt``), coordinates normalised
to the EXIF-oriented image. A missing label file is a background image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from yoloswap.data import images
from yoloswap.data.formats import cache as label_cache
from yoloswap.data.formats.common import (
    COORD_TOLERANCE,
    DataConfig,
    Sample,
    Split,
    SplitSource,
    clip_and_drop,
    collect_splits,
    dropped_note,
    parse_names,
    probe_all,
)
from yoloswap.errors import DataError


def read_config(source: Path, doc: dict, root: Path) -> DataConfig:
    """The YAML's splits (each must exist now) and class names."""

    def build(key: str, raw: Any) -> SplitSource:
        entries = []
        for item in raw if isinstance(raw, list) else [raw]:
            if not isinstance(item, str):
                raise DataError(f"{source}: field '{key}' must be a folder or .txt path (or a list), got {item!r}")
            p = _resolve_entry(root, item)
            if not p.exists():
                raise DataError(f"{source}: field '{key}': {p} does not exist")
            if p.is_file() and p.suffix.lower() != ".txt":
                raise DataError(f"{source}: field '{key}': {p} is neither a folder nor a .txt list of images")
            entries.append(p)
        return SplitSource(name=key, entries=tuple(entries))

    splits = collect_splits(source, doc, build)
    names = parse_names(source, doc)
    return DataConfig(names=names, category_ids=None, source=source, root=root, format="yolo", split_sources=splits)


def _resolve_entry(root: Path, item: str) -> Path:
    """``item`` under ``root``; a missing ``../x`` is retried as ``x`` under ``root``, as Ultralytics' data check
    does, because Roboflow exports write ``train: ../train/images`` next to a ``data.yaml`` inside the export."""
    p = Path(item).expanduser()
    if p.is_absolute():
        return p
    if not (root / p).exists() and item.replace("\\", "/").startswith("../"):
        return root / item[3:]
    return root / p


def list_split_images(src: SplitSource, root: Path) -> list[Path]:
    """Image paths of an Ultralytics split: folders searched recursively (sorted), .txt lists in their order."""
    found: list[Path] = []
    for entry in src.entries:
        if entry.is_dir():
            found.extend(sorted(p for p in entry.rglob("*") if images.is_image_file(p)))
        else:
            found.extend(_read_list_file(entry, root))
    return found


def _read_list_file(txt: Path, root: Path) -> list[Path]:
    """Lines of a .txt image list. A relative line is taken relative to the list's folder (Ultralytics' rule),
    or to the data set root when only that exists; a missing file is reported later as skipped."""
    try:
        lines = txt.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{txt}: cannot read image list ({e})") from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        if not p.is_absolute():
            near, under_root = txt.parent / p, root / p
            p = under_root if not near.exists() and under_root.exists() else near
        out.append(p)
    return out


def label_path_for(image: Path) -> Path:
    """``.../images/x/a.jpg`` → ``.../labels/x/a.txt`` (last ``images`` folder replaced); else next to the image."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def load_split(cfg: DataConfig, src: SplitSource) -> Split:
    """Probe every image and parse its label file (or read the cache when nothing changed)."""
    paths = [p.absolute() for p in list_split_images(src, cfg.root)]
    labels = [label_path_for(p) for p in paths]
    head = [label_cache.CACHE_VERSION, "yolo", json.dumps(cfg.names)]
    fingerprint = label_cache.fingerprint(head, paths + labels)
    cache = label_cache.cache_path(cfg, src.name)
    cached = label_cache.read_cache(cache, fingerprint)
    if cached is not None:
        return cached

    samples, skipped, dropped = [], [], []
    for image_id, (path, label, info) in enumerate(zip(paths, labels, probe_all(paths))):
        if isinstance(info, str):
            skipped.append(info)
            continue
        boxes, classes, n_dropped = parse_label_file(label, len(cfg.names), info.width, info.height)
        if n_dropped:
            dropped.append(dropped_note(label, n_dropped))
        samples.append(
            Sample(
                path=path,
                image_id=image_id,
                width=info.width,
                height=info.height,
                boxes=boxes,
                classes=classes,
                crowd=np.zeros(len(classes), dtype=bool),
            )
        )
    split = Split(name=src.name, samples=tuple(samples), skipped=tuple(skipped), dropped=tuple(dropped))
    label_cache.write_cache(cache, fingerprint, split, files=paths)
    return split


def parse_label_file(path: Path, num_classes: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Read ``class cx cy w h`` lines (normalised) into pixel xyxy boxes; a missing file means no objects.

    Returns boxes (n, 4), classes (n,) and how many boxes were dropped for lying wholly outside the image (only
    possible within the rounding tolerance; boxes partly outside are clipped). Raises :class:`DataError` as
    ``path:line: what is wrong`` for anything that would silently train on garbage (NaN, inf, negative or zero
    sizes, coordinates outside [0, 1], unknown classes, bytes that are not UTF-8 text).
    """
    if not path.is_file():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 0
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is not a field
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: label file is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                        f"{e.start}); labels are lines of numbers 'class cx cy w h'") from None  # fmt: skip
    except OSError as e:
        raise DataError(f"{path}: cannot read label file ({e.strerror or e})") from None
    rows: list[tuple[int, float, float, float, float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{lineno}"
        rows.append(_parse_row(where, tokens, line, num_classes))
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 0
    arr = np.asarray(rows, dtype=np.float64)  # (n, 5)
    cx, cy, w, h = arr[:, 1] * width, arr[:, 2] * height, arr[:, 3] * width, arr[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # (n, 4)
    boxes, keep = clip_and_drop(boxes, width, height)
    return boxes[keep].astype(np.float32), arr[keep, 0].astype(np.int64), int((~keep).sum())


def _parse_row(where: str, tokens: list[str], line: str, num_classes: int) -> tuple[int, float, float, float, float]:
    """One label row as ``(class, cx, cy, w, h)``: a box (5 fields) or a polygon ``class x1 y1 x2 y2 ...`` (what
    segmentation exports write), which becomes its bounding box. Decided per row, so mixed files read right."""
    n = len(tokens)
    if n != 5 and (n < 7 or n % 2 == 0):
        what = "an odd number of polygon coordinates" if n > 5 and n % 2 == 0 else f"{n} fields"
        raise DataError(f"{where}: expected 5 fields 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...' "
                        f"(at least 3 points), got {what}")  # fmt: skip
    values = []
    for tok in tokens:
        try:
            values.append(float(tok))
        except ValueError:
            raise DataError(f"{where}: {tok[:20]!r} is not a number") from None
    if not np.isfinite(values).all():
        raise DataError(f"{where}: values must be finite, got {line.strip()[:80]!r}")
    cls_f = values[0]
    if cls_f != int(cls_f) or not 0 <= cls_f < num_classes:
        raise DataError(f"{where}: class {tokens[0]} is not in names (0..{num_classes - 1})")
    names = ("cx", "cy", "w", "h") if n == 5 else ("x", "y") * ((n - 1) // 2)
    for name, v, tok in zip(names, values[1:], tokens[1:]):
        if not -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE:
            raise DataError(f"{where}: {name}={tok} is outside [0, 1] (coordinates are normalised)")
    if n == 5:
        cx, cy, w, h = values[1:]
    else:
        xs, ys = values[1::2], values[2::2]
        w, h = max(xs) - min(xs), max(ys) - min(ys)
        cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: box width and height must be > 0, got w={w:g} h={h:g}")
    return int(cls_f), cx, cy, w, h
