"""What every data format produces (samples, splits, the resolved config) and the helpers they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yoloswap.data import images
from yoloswap.device import usable_cpus
from yoloswap.errors import DataError

COORD_TOLERANCE = 1e-3  # normalised coordinates may overshoot [0, 1] by rounding, not by more


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
    """The usable images of one split plus what was left out: images (``"path: reason"``) and boxes.

    ``dropped`` lists ``"path: N box(es) ..."`` for images that lost boxes lying wholly outside the picture (no
    area left after clipping): the image itself is kept.
    """

    name: str
    samples: tuple[Sample, ...]
    skipped: tuple[str, ...] = ()
    annotations: Path | None = None  # the COCO JSON this split came from, if any
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitSource:
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
    format: str  # a key of yoloswap.data.formats.FORMATS
    split_sources: dict[str, SplitSource] = field(repr=False, compare=False)
    # scans one split: the format table's ``load_split``, handed in by ``load_data_config`` so that this module
    # never imports its own package (the formats import this module)
    scanner: Callable[[DataConfig, SplitSource], Split] | None = field(default=None, repr=False, compare=False)
    _loaded: dict[str, Split] = field(default_factory=dict, repr=False, compare=False)
    layout: str = "data YAML"  # what --data was recognised as (a folder layout's name, or "data YAML")
    notes: tuple[str, ...] = ()  # what the reader decided for the user, to be logged (e.g. names from the XMLs)

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
            if self.scanner is None:
                raise DataError(f"{self.source}: read it with yoloswap.data.formats.load_data_config")
            self._loaded[name] = self.scanner(self, self.split_sources[name])
        return self._loaded[name]


def collect_splits(source: Path, doc: dict, build: Callable[[str, Any], SplitSource]) -> dict[str, SplitSource]:
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
            splits[key] = SplitSource(name=key, problem=str(e))
    return splits


def parse_names(source: Path, doc: dict) -> tuple[str, ...]:
    raw = doc.get("names")
    if raw is None and isinstance(doc.get("nc"), int) and doc["nc"] > 0:  # Ultralytics: nc alone names class_0..
        raw = [f"class_{i}" for i in range(doc["nc"])]
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


def under(root: Path, raw: Any) -> Path:
    p = Path(str(raw)).expanduser()
    return p if p.is_absolute() else root / p


def probe_all(paths: Sequence[Path]) -> list[images.ImageInfo | str]:
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
    with ThreadPoolExecutor(max_workers=min(8, 2 * usable_cpus())) as pool:
        return list(pool.map(one, paths, chunksize=64))


def clip_and_drop(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip pixel xyxy ``boxes`` (n, 4) to the image; returns them and the mask of boxes with area left.

    A box partly outside the picture keeps its visible part; one wholly outside has none and is dropped by the
    caller (and counted), because a zero-area target only teaches the model noise.
    """
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep


def dropped_note(path: Path, count: int) -> str:
    return f"{path}: {count} box(es) wholly outside the image dropped"
