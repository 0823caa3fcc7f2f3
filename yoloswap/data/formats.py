"""Data sets as users already have them: an Ultralytics data YAML or a COCO JSON, read into one shape.

Every split becomes a tuple of :class:`Sample` records with boxes in pixels of the (EXIF-oriented) image, so
the dataset, the anchor check and the evaluator never care where the data came from.

Scanning a split opens every image header and parses every label file, which takes minutes on COCO. The result
is cached next to the data (``<root>/<yaml stem>.<split>.cache.npz``) and reused while the file list, sizes and
modification times stay the same.

Ultralytics YAML::

    path: ../datasets/shapes        # relative to this YAML's folder; default: the YAML's folder
    train: images/train             # a folder, a .txt list of image paths, or a list of those (relative to path)
    val: images/val
    names: [circle, square]         # or {0: circle, 1: square}

COCO YAML::

    format: coco
    path: /data/coco
    train: {images: train2017, annotations: annotations/instances_train2017.json}
    val: {images: val2017, annotations: annotations/instances_val2017.json}
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from yoloswap.data import images
from yoloswap.errors import DataError

COORD_TOLERANCE = 1e-3  # normalised coordinates may overshoot [0, 1] by rounding, not by more
_CACHE_VERSION = "yoloswap-labels-v1"
_SKIPPED_SHOWN = 3


class DataWarning(UserWarning):
    """Something in a data set was left out (e.g. unreadable images); training goes on without it."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its boxes, in pixels of the image as :func:`images.read_image` returns it.

    ``crowd`` boxes (COCO ``iscrowd``) are kept so evaluation can ignore detections on them, but they are never
    training targets. ``apply_exif`` is False only for COCO images whose JSON size matches the stored pixels
    rather than the EXIF-rotated ones: their boxes were drawn on the unrotated image.
    """

    path: Path
    image_id: int
    width: int
    height: int
    boxes: np.ndarray  # (n, 4) float32 x1 y1 x2 y2, pixels
    classes: np.ndarray  # (n,) int64, contiguous 0..K-1
    crowd: np.ndarray  # (n,) bool
    apply_exif: bool = True


@dataclass(frozen=True)
class Split:
    """The usable images of one split plus the ones left out (``"path: reason"``)."""

    name: str
    samples: tuple[Sample, ...]
    skipped: tuple[str, ...] = ()
    annotations: Path | None = None  # the COCO JSON this split came from, if any


@dataclass(frozen=True)
class _SplitSource:
    """Where one split lives, as the YAML says (nothing opened yet)."""

    name: str  # the YAML key, e.g. "train"
    entries: tuple[Path, ...] = ()  # Ultralytics: folders and .txt lists
    images_dir: Path | None = None  # COCO
    annotations: Path | None = None  # COCO
    problem: str | None = None  # why an optional split cannot be used (raised when it is asked for)


@dataclass(frozen=True)
class DataConfig:
    """A data YAML, resolved. Splits are scanned on first access (``cfg.train``, ``cfg.val``) and memoised.

    Lazy so that ``yoloswap val`` does not scan the training set; errors still surface before training starts
    because the trainer reads ``cfg.train`` first.
    """

    names: tuple[str, ...]
    category_ids: tuple[int, ...] | None
    source: Path
    root: Path
    format: str  # "yolo" | "coco"
    split_sources: dict[str, _SplitSource] = field(repr=False, compare=False)
    _loaded: dict[str, Split] = field(default_factory=dict, repr=False, compare=False)

    @property
    def train(self) -> Split:
        return self.split("train")

    @property
    def val(self) -> Split:
        return self.split("val")

    def split(self, name: str) -> Split:
        """Scan (or read from cache) the split ``name``: "train", "val" or "test" (when the YAML has one)."""
        if name not in self._loaded:
            if name not in self.split_sources:
                raise DataError(f"{self.source}: field '{name}' is missing")
            if self.split_sources[name].problem:
                raise DataError(self.split_sources[name].problem)
            self._loaded[name] = _load_split(self, self.split_sources[name])
        return self._loaded[name]


# ----------------------------------------------------------------------------------------------- YAML


def load_data_config(path: str | Path) -> DataConfig:
    """Read a data YAML (Ultralytics or ``format: coco``) and check that everything it names exists."""
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise DataError(f"{source}: data YAML not found")
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(f"{source}: not valid YAML ({e})".replace("\n", " ")) from None
    if not isinstance(doc, dict):
        raise DataError(f"{source}: expected a mapping with 'train', 'val' and 'names'")

    root = _resolve_root(source, doc)
    fmt = str(doc.get("format", "yolo")).lower()
    if fmt in ("yolo", "ultralytics"):
        return _yolo_config(source, doc, root)
    if fmt == "coco":
        return _coco_config(source, doc, root)
    raise DataError(f"{source}: field 'format' must be 'yolo' or 'coco', got {doc['format']!r}")


def _resolve_root(source: Path, doc: dict) -> Path:
    raw = doc.get("path")
    if raw is None:
        return source.parent
    if not isinstance(raw, str):
        raise DataError(f"{source}: field 'path' must be a folder path, got {raw!r}")
    root = Path(raw).expanduser()
    root = (root if root.is_absolute() else source.parent / root).resolve()
    if not root.is_dir():
        raise DataError(f"{source}: field 'path': folder {root} does not exist")
    return root


def _collect_splits(
    source: Path, doc: dict, build: Callable[[str, Any], _SplitSource]
) -> dict[str, _SplitSource]:
    """train and val must be usable now. A broken optional split (test) fails only when it is used: published
    YAMLs (COCO's among them) list test sets that few people download."""
    splits = {}
    for key in ("train", "val", "test"):
        if doc.get(key) is None:
            if key != "test":
                raise DataError(f"{source}: field '{key}' is missing")
            continue
        try:
            splits[key] = build(key, doc[key])
        except DataError as e:
            if key != "test":
                raise
            splits[key] = _SplitSource(name=key, problem=str(e))
    return splits


def _yolo_config(source: Path, doc: dict, root: Path) -> DataConfig:
    def build(key: str, raw: Any) -> _SplitSource:
        entries = []
        for item in raw if isinstance(raw, list) else [raw]:
            if not isinstance(item, str):
                raise DataError(f"{source}: field '{key}' must be a folder or .txt path (or a list), got {item!r}")
            p = Path(item).expanduser()
            p = p if p.is_absolute() else root / p
            if not p.exists():
                raise DataError(f"{source}: field '{key}': {p} does not exist")
            if p.is_file() and p.suffix.lower() != ".txt":
                raise DataError(f"{source}: field '{key}': {p} is neither a folder nor a .txt list of images")
            entries.append(p)
        return _SplitSource(name=key, entries=tuple(entries))

    splits = _collect_splits(source, doc, build)
    names = _parse_names(source, doc)
    return DataConfig(names=names, category_ids=None, source=source, root=root, format="yolo", split_sources=splits)


def _parse_names(source: Path, doc: dict) -> tuple[str, ...]:
    raw = doc.get("names")
    if raw is None:
        raise DataError(f"{source}: field 'names' is missing (a list of class names or {{id: name}})")
    if isinstance(raw, list):
        names = tuple(str(n) for n in raw)
    elif isinstance(raw, dict):
        try:
            by_id = {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise DataError(f"{source}: field 'names': keys must be class ids 0, 1, ...") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise DataError(f"{source}: field 'names': ids must be 0..{len(by_id) - 1}, got {sorted(by_id)}")
        names = tuple(by_id[i] for i in range(len(by_id)))
    else:
        raise DataError(f"{source}: field 'names' must be a list or {{id: name}}, got {type(raw).__name__}")
    if not names:
        raise DataError(f"{source}: field 'names' is empty")
    nc = doc.get("nc")
    if nc is not None and nc != len(names):
        raise DataError(f"{source}: field 'nc' is {nc} but 'names' lists {len(names)} classes")
    return names


def _coco_config(source: Path, doc: dict, root: Path) -> DataConfig:
    def build(key: str, raw: Any) -> _SplitSource:
        if not isinstance(raw, dict) or "images" not in raw or "annotations" not in raw:
            raise DataError(f"{source}: field '{key}' must be {{images: DIR, annotations: FILE}} for format: coco")
        images_dir = _under(root, raw["images"])
        annotations = _under(root, raw["annotations"])
        if not images_dir.is_dir():
            raise DataError(f"{source}: field '{key}.images': folder {images_dir} does not exist")
        if not annotations.is_file():
            raise DataError(f"{source}: field '{key}.annotations': file {annotations} does not exist")
        return _SplitSource(name=key, images_dir=images_dir, annotations=annotations)

    splits = _collect_splits(source, doc, build)
    # Class names and ids come from the (small) val JSON; other splits must agree when they are loaded.
    categories = _coco_categories(splits["val"].annotations, _read_json(splits["val"].annotations))
    category_ids = tuple(sorted(categories))
    names = tuple(categories[i] for i in category_ids)
    if doc.get("names") is not None:
        display = _parse_names(source, doc)
        if len(display) != len(names):
            raise DataError(f"{source}: field 'names' lists {len(display)} classes, the COCO JSON {len(names)}")
        names = display
    return DataConfig(
        names=names, category_ids=category_ids, source=source, root=root, format="coco", split_sources=splits
    )


def _under(root: Path, raw: Any) -> Path:
    p = Path(str(raw)).expanduser()
    return p if p.is_absolute() else root / p


# ----------------------------------------------------------------------------------------------- splits


def _load_split(cfg: DataConfig, src: _SplitSource) -> Split:
    if cfg.format == "coco":
        split = _load_coco_split(cfg, src)
    else:
        split = _load_yolo_split(cfg, src)
    if split.skipped:
        shown = "; ".join(split.skipped[:_SKIPPED_SHOWN])
        more = f" (and {len(split.skipped) - _SKIPPED_SHOWN} more)" if len(split.skipped) > _SKIPPED_SHOWN else ""
        warnings.warn(
            f"{cfg.source}: split '{src.name}': skipped {len(split.skipped)} unreadable image(s): {shown}{more}",
            DataWarning,
            stacklevel=3,
        )
    if not split.samples:
        raise DataError(f"{cfg.source}: field '{src.name}': no usable images found")
    return split


def _probe_all(paths: Sequence[Path]) -> list[images.ImageInfo | str]:
    """Probe headers in a few threads (file opening is I/O bound); an unusable file gives its reason."""

    def one(p: Path) -> images.ImageInfo | str:
        if not p.is_file():
            return f"{p}: file not found"
        try:
            return images.probe_image(p)
        except images.CorruptImageError as e:
            return str(e)

    if len(paths) < 64:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(one, paths, chunksize=64))


# --- Ultralytics


def list_split_images(src: _SplitSource, root: Path) -> list[Path]:
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


def _load_yolo_split(cfg: DataConfig, src: _SplitSource) -> Split:
    paths = [p.absolute() for p in list_split_images(src, cfg.root)]
    labels = [label_path_for(p) for p in paths]
    head = [_CACHE_VERSION, "yolo", json.dumps(cfg.names)]
    fingerprint = _fingerprint(head, paths + labels)
    cache = _cache_path(cfg, src.name)
    cached = _read_cache(cache, fingerprint)
    if cached is not None:
        return cached

    samples, skipped = [], []
    for image_id, (path, label, info) in enumerate(zip(paths, labels, _probe_all(paths))):
        if isinstance(info, str):
            skipped.append(info)
            continue
        boxes, classes = parse_label_file(label, len(cfg.names), info.width, info.height)
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
    split = Split(name=src.name, samples=tuple(samples), skipped=tuple(skipped))
    _write_cache(cache, fingerprint, split, files=paths)
    return split


def parse_label_file(path: Path, num_classes: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Read ``class cx cy w h`` lines (normalised) into pixel xyxy boxes; a missing file means no objects.

    Raises :class:`DataError` as ``path:line: what is wrong`` for anything that would silently train on garbage.
    """
    if not path.is_file():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read label file ({e})") from None
    rows: list[tuple[int, float, float, float, float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path}:{lineno}"
        if len(tokens) != 5:
            raise DataError(f"{where}: expected 5 fields 'class cx cy w h', got {len(tokens)}")
        values = []
        for tok in tokens:
            try:
                values.append(float(tok))
            except ValueError:
                raise DataError(f"{where}: {tok!r} is not a number") from None
        cls_f, cx, cy, w, h = values
        if not np.isfinite(values).all():
            raise DataError(f"{where}: values must be finite, got {line.strip()!r}")
        if cls_f != int(cls_f) or not 0 <= cls_f < num_classes:
            raise DataError(f"{where}: class {tokens[0]} is not in names (0..{num_classes - 1})")
        for name, v, tok in zip(("cx", "cy", "w", "h"), (cx, cy, w, h), tokens[1:]):
            if not -COORD_TOLERANCE <= v <= 1 + COORD_TOLERANCE:
                raise DataError(f"{where}: {name}={tok} is outside [0, 1] (coordinates are normalised)")
        if w <= 0 or h <= 0:
            raise DataError(f"{where}: box width and height must be > 0, got w={tokens[3]} h={tokens[4]}")
        rows.append((int(cls_f), cx, cy, w, h))
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    arr = np.asarray(rows, dtype=np.float64)  # (n, 5)
    cx, cy, w, h = arr[:, 1] * width, arr[:, 2] * height, arr[:, 3] * width, arr[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # (n, 4)
    boxes = _clip(boxes, width, height)
    return boxes.astype(np.float32), arr[:, 0].astype(np.int64)


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


# --- COCO


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable COCO JSON ({e})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a COCO JSON object with 'images', 'annotations', 'categories'")
    return doc


def _coco_list(path: Path, doc: dict, key: str) -> list:
    value = doc.get(key)
    if not isinstance(value, list):
        raise DataError(f"{path}: field '{key}' is missing or not a list")
    return value


def _coco_categories(path: Path, doc: dict) -> dict[int, str]:
    """``{category id: name}``; ids may be sparse (COCO's 80 classes use ids 1..90)."""
    out: dict[int, str] = {}
    for i, cat in enumerate(_coco_list(path, doc, "categories")):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
            raise DataError(f"{path}: categories[{i}] needs an integer 'id' and a 'name'")
        if cat["id"] in out:
            raise DataError(f"{path}: categories[{i}]: id {cat['id']} appears twice")
        out[cat["id"]] = str(cat["name"])
    if not out:
        raise DataError(f"{path}: field 'categories' is empty")
    return out


def _load_coco_split(cfg: DataConfig, src: _SplitSource) -> Split:
    assert src.annotations is not None and src.images_dir is not None
    ann_path = src.annotations
    stat = ann_path.stat()
    head = [_CACHE_VERSION, "coco", json.dumps(cfg.category_ids), str(ann_path), str(stat.st_mtime_ns),
            str(stat.st_size), str(src.images_dir)]  # fmt: skip
    cache = _cache_path(cfg, src.name)
    files = _cached_files(cache)
    if files is not None:
        cached = _read_cache(cache, _fingerprint(head, files))
        if cached is not None:
            return cached

    doc = _read_json(ann_path)
    categories = _coco_categories(ann_path, doc)
    if tuple(sorted(categories)) != cfg.category_ids:
        raise DataError(
            f"{ann_path}: categories differ from the val JSON's ({len(categories)} vs {len(cfg.category_ids or ())})"
        )
    contiguous = {cid: i for i, cid in enumerate(cfg.category_ids)}
    entries = _coco_images(ann_path, doc)
    per_image = _coco_annotations(ann_path, doc, {e[0] for e in entries}, contiguous)
    paths = [src.images_dir / e[1] for e in entries]
    fingerprint = _fingerprint(head, paths)

    samples, skipped = [], []
    for (image_id, _, json_w, json_h), path, info in zip(entries, paths, _probe_all(paths)):
        if isinstance(info, str):
            skipped.append(info)
            continue
        if json_w is None or (json_w, json_h) == (info.width, info.height):
            width, height, apply_exif = info.width, info.height, True
        elif (json_w, json_h) == (info.raw_width, info.raw_height):
            width, height, apply_exif = info.raw_width, info.raw_height, False  # boxes drawn on unrotated pixels
        else:
            skipped.append(f"{path}: size {json_w}x{json_h} in {ann_path.name} differs from the file's "
                           f"{info.width}x{info.height}")  # fmt: skip
            continue
        boxes, classes, crowd = _coco_boxes(per_image.get(image_id, []), width, height)
        samples.append(Sample(path, image_id, width, height, boxes, classes, crowd, apply_exif))
    split = Split(name=src.name, samples=tuple(samples), skipped=tuple(skipped), annotations=ann_path)
    _write_cache(cache, fingerprint, split, files=paths)
    return split


def _coco_images(path: Path, doc: dict) -> list[tuple[int, str, int | None, int | None]]:
    out = []
    seen = set()
    for i, im in enumerate(_coco_list(path, doc, "images")):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            raise DataError(f"{path}: images[{i}] needs an integer 'id' and a 'file_name'")
        if im["id"] in seen:
            raise DataError(f"{path}: images[{i}]: id {im['id']} appears twice")
        seen.add(im["id"])
        w, h = im.get("width"), im.get("height")
        if isinstance(w, int | float) and isinstance(h, int | float) and w > 0 and h > 0:
            out.append((im["id"], im["file_name"], round(w), round(h)))
        else:  # size not given: take the file's
            out.append((im["id"], im["file_name"], None, None))
    return out


def _coco_annotations(
    path: Path, doc: dict, image_ids: set[int], contiguous: dict[int, int]
) -> dict[int, list[tuple[list[float], int, bool]]]:
    """Annotations grouped by image id as ``(bbox xywh, contiguous class, crowd)``."""
    out: dict[int, list[tuple[list[float], int, bool]]] = {}
    for i, ann in enumerate(_coco_list(path, doc, "annotations")):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict):
            raise DataError(f"{where} is not an object")
        if not isinstance(ann.get("image_id"), int) or ann["image_id"] not in image_ids:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if not isinstance(ann.get("category_id"), int) or ann["category_id"] not in contiguous:
            raise DataError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            raise DataError(f"{where}: bbox must be [x, y, width, height] in pixels, got {bbox!r}")
        crowd = bool(ann.get("iscrowd", 0))
        out.setdefault(ann["image_id"], []).append((bbox, contiguous[ann["category_id"]], crowd))
    return out


def _coco_boxes(anns: list, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel xyxy boxes clipped to the image; degenerate boxes (no area after clipping) are dropped."""
    if not anns:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    xywh = np.asarray([a[0] for a in anns], dtype=np.float64)  # (n, 4)
    boxes = _clip(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), width, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    classes = np.asarray([a[1] for a in anns], dtype=np.int64)
    crowd = np.asarray([a[2] for a in anns], dtype=bool)
    return boxes[keep].astype(np.float32), classes[keep], crowd[keep]


# ----------------------------------------------------------------------------------------------- cache


def _fingerprint(head: Sequence[str], paths: Sequence[Path]) -> str:
    """Hash of the file list with each file's size and mtime (``-`` for a missing file, e.g. no label)."""
    h = hashlib.sha256()
    for part in head:
        h.update(part.encode() + b"\0")
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0-\n".encode())
    return h.hexdigest()


def _cache_path(cfg: DataConfig, split: str) -> Path:
    """``<data root>/<yaml stem>.<split>.cache.npz``, or under the user cache folder if the root is read-only."""
    local = cfg.root / f"{cfg.source.stem}.{split}.cache.npz"
    if os.access(cfg.root, os.W_OK):
        return local
    digest = hashlib.sha1(str(cfg.source).encode()).hexdigest()[:16]
    home = Path(os.environ.get("YOLOSWAP_HOME") or Path.home() / ".cache" / "yoloswap")
    return home / "label-cache" / f"{digest}.{split}.cache.npz"


def _cached_files(cache: Path) -> list[Path] | None:
    """The file list a COCO cache was built from (the JSON is not parsed on a hit, so the list comes from here)."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            return [Path(p) for p in z["files"].tolist()]
    except (OSError, KeyError, ValueError, EOFError):
        return None


def _read_cache(cache: Path, fingerprint: str) -> Split | None:
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            arrays = {k: z[k] for k in z.files}
    except (OSError, KeyError, ValueError, EOFError):
        return None
    ends = np.cumsum(arrays["counts"])
    starts = ends - arrays["counts"]
    samples = tuple(
        Sample(
            path=Path(p),
            image_id=int(iid),
            width=int(w),
            height=int(h),
            boxes=arrays["boxes"][s:e].copy(),
            classes=arrays["classes"][s:e].copy(),
            crowd=arrays["crowd"][s:e].copy(),
            apply_exif=bool(ex),
        )
        for p, iid, w, h, ex, s, e in zip(
            arrays["paths"].tolist(), arrays["image_ids"], arrays["widths"], arrays["heights"],
            arrays["apply_exif"], starts, ends,
        )  # fmt: skip
    )
    annotations = str(arrays["annotations"])
    return Split(
        name=str(arrays["name"]),
        samples=samples,
        skipped=tuple(arrays["skipped"].tolist()),
        annotations=Path(annotations) if annotations else None,
    )


def _write_cache(cache: Path, fingerprint: str, split: Split, files: Sequence[Path]) -> None:
    """Write atomically (temp file + rename) so a killed run or a second process never sees half a cache."""
    s = split.samples
    arrays = {
        "fingerprint": np.array(fingerprint),
        "name": np.array(split.name),
        "annotations": np.array(str(split.annotations) if split.annotations else ""),
        "files": np.array([str(p) for p in files], dtype=str),
        "skipped": np.array(list(split.skipped), dtype=str),
        "paths": np.array([str(x.path) for x in s], dtype=str),
        "image_ids": np.array([x.image_id for x in s], dtype=np.int64),
        "widths": np.array([x.width for x in s], dtype=np.int64),
        "heights": np.array([x.height for x in s], dtype=np.int64),
        "apply_exif": np.array([x.apply_exif for x in s], dtype=bool),
        "counts": np.array([len(x.classes) for x in s], dtype=np.int64),
        "boxes": np.concatenate([x.boxes for x in s]).reshape(-1, 4).astype(np.float32)
        if s
        else np.zeros((0, 4), np.float32),
        "classes": np.concatenate([x.classes for x in s]).astype(np.int64) if s else np.zeros(0, np.int64),
        "crowd": np.concatenate([x.crowd for x in s]).astype(bool) if s else np.zeros(0, bool),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    tmp = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=cache.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        os.replace(tmp, cache)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"could not write label cache {cache} ({e}); the next run will rescan", DataWarning, stacklevel=4)
