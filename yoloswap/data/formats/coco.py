"""COCO: a data YAML with ``format: coco`` naming, per split, an image folder and an instances JSON.

::

    format: coco
    path: /data/coco
    train: {images: train2017, annotations: annotations/instances_train2017.json}
    val: {images: val2017, annotations: annotations/instances_val2017.json}

Category ids may be sparse (COCO's 80 classes use 1..90); they are mapped to contiguous classes in id order and
kept in :attr:`DataConfig.category_ids` so predictions can be written back with the file's own ids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from yoloswap.data.formats import cache as label_cache
from yoloswap.data.formats.common import (
    DataConfig,
    Sample,
    Split,
    SplitSource,
    clip_and_drop,
    collect_splits,
    dropped_note,
    parse_names,
    probe_all,
    under,
)
from yoloswap.errors import DataError


def read_config(source: Path, doc: dict, root: Path) -> DataConfig:
    """The splits (each must exist now); class names and ids from the val JSON (or the YAML's ``names``)."""

    def build(key: str, raw: Any) -> SplitSource:
        if not isinstance(raw, dict) or "images" not in raw or "annotations" not in raw:
            raise DataError(f"{source}: field '{key}' must be {{images: DIR, annotations: FILE}} for format: coco")
        images_dir = under(root, raw["images"])
        annotations = under(root, raw["annotations"])
        if not images_dir.is_dir():
            raise DataError(f"{source}: field '{key}.images': folder {images_dir} does not exist")
        if not annotations.is_file():
            raise DataError(f"{source}: field '{key}.annotations': file {annotations} does not exist")
        return SplitSource(name=key, images_dir=images_dir, annotations=annotations)

    splits = collect_splits(source, doc, build)
    # Class names and ids come from the (small) val JSON; other splits must agree when they are loaded.
    categories = _categories(splits["val"].annotations, _read_json(splits["val"].annotations))
    category_ids = tuple(sorted(categories))
    names = tuple(categories[i] for i in category_ids)
    if doc.get("names") is not None:
        display = parse_names(source, doc)
        if len(display) != len(names):
            raise DataError(f"{source}: field 'names' lists {len(display)} classes, the COCO JSON {len(names)}")
        names = display
    return DataConfig(
        names=names, category_ids=category_ids, source=source, root=root, format="coco", split_sources=splits
    )


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable COCO JSON ({e})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a COCO JSON object with 'images', 'annotations', 'categories'")
    return doc


def _list(path: Path, doc: dict, key: str) -> list:
    value = doc.get(key)
    if not isinstance(value, list):
        raise DataError(f"{path}: field '{key}' is missing or not a list")
    return value


def _categories(path: Path, doc: dict) -> dict[int, str]:
    """``{category id: name}``; ids may be sparse (COCO's 80 classes use ids 1..90)."""
    out: dict[int, str] = {}
    for i, cat in enumerate(_list(path, doc, "categories")):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or "name" not in cat:
            raise DataError(f"{path}: categories[{i}] needs an integer 'id' and a 'name'")
        if cat["id"] in out:
            raise DataError(f"{path}: categories[{i}]: id {cat['id']} appears twice")
        out[cat["id"]] = str(cat["name"])
    if not out:
        raise DataError(f"{path}: field 'categories' is empty")
    return _without_roboflow_parent(doc["categories"], out)


def _without_roboflow_parent(cats: list[dict], out: dict[int, str]) -> dict[int, str]:
    """Roboflow's COCO export lists the project itself as a category (``supercategory: none``) that is the
    supercategory of every real class and labels nothing; it is not a class, so it is left out."""
    parents = [c for c in cats if c.get("supercategory") == "none"]
    rest = [c for c in cats if c.get("supercategory") != "none"]
    if len(parents) == 1 and rest and all(c.get("supercategory") == parents[0]["name"] for c in rest):
        out = {k: v for k, v in out.items() if k != parents[0]["id"]}
    return out


def load_split(cfg: DataConfig, src: SplitSource) -> Split:
    """Parse the split's JSON and probe its images (or read the cache when nothing changed)."""
    assert src.annotations is not None and src.images_dir is not None
    ann_path = src.annotations
    stat = ann_path.stat()
    head = [label_cache.CACHE_VERSION, "coco", json.dumps(cfg.category_ids), str(ann_path), str(stat.st_mtime_ns),
            str(stat.st_size), str(src.images_dir)]  # fmt: skip
    cache = label_cache.cache_path(cfg, src.name)
    files = label_cache.cached_files(cache)
    if files is not None:
        cached = label_cache.read_cache(cache, label_cache.fingerprint(head, files))
        if cached is not None:
            return cached

    doc = _read_json(ann_path)
    categories = _categories(ann_path, doc)
    if tuple(sorted(categories)) != cfg.category_ids:
        raise DataError(
            f"{ann_path}: categories differ from the val JSON's ({len(categories)} vs {len(cfg.category_ids or ())})"
        )
    contiguous = {cid: i for i, cid in enumerate(cfg.category_ids)}
    entries = _images(ann_path, doc)
    per_image = _annotations(ann_path, doc, {e[0] for e in entries}, contiguous)
    paths = [src.images_dir / e[1] for e in entries]
    fingerprint = label_cache.fingerprint(head, paths)

    samples, skipped, dropped = [], [], []
    for (image_id, _, json_w, json_h), path, info in zip(entries, paths, probe_all(paths)):
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
        boxes, classes, crowd, n_dropped = _boxes(per_image.get(image_id, []), width, height)
        if n_dropped:
            dropped.append(dropped_note(path, n_dropped))
        samples.append(Sample(path, image_id, width, height, boxes, classes, crowd, apply_exif))
    split = Split(name=src.name, samples=tuple(samples), skipped=tuple(skipped), annotations=ann_path,
                  dropped=tuple(dropped))  # fmt: skip
    label_cache.write_cache(cache, fingerprint, split, files=paths)
    return split


def _images(path: Path, doc: dict) -> list[tuple[int, str, int | None, int | None]]:
    """``(id, file_name, json width, json height)`` per image; sizes None when the JSON does not give them."""
    out = []
    seen = set()
    for i, im in enumerate(_list(path, doc, "images")):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or not isinstance(im.get("file_name"), str):
            raise DataError(f"{path}: images[{i}] needs an integer 'id' and a 'file_name'")
        if im["id"] in seen:
            raise DataError(f"{path}: images[{i}]: id {im['id']} appears twice")
        seen.add(im["id"])
        _check_file_name(path, i, im["file_name"])
        w, h = im.get("width"), im.get("height")
        if isinstance(w, int | float) and isinstance(h, int | float) and w > 0 and h > 0:
            out.append((im["id"], im["file_name"], round(w), round(h)))
        else:  # size not given: take the file's
            out.append((im["id"], im["file_name"], None, None))
    return out


def _check_file_name(path: Path, i: int, name: str) -> None:
    """A ``file_name`` must stay inside the split's image folder: no absolute path, no ``..`` (in either slash
    style), so a hostile JSON cannot make yoloswap read (or a later tool write) files elsewhere."""
    parts = set(PurePosixPath(name).parts) | set(PureWindowsPath(name).parts)
    if ".." in parts or PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
        raise DataError(f"{path}: images[{i}]: file_name {name[:120]!r} leaves the images folder "
                        "(use a path relative to it, without '..')")  # fmt: skip


def _annotations(
    path: Path, doc: dict, image_ids: set[int], contiguous: dict[int, int]
) -> dict[int, list[tuple[list[float], int, bool]]]:
    """Annotations grouped by image id as ``(bbox xywh, contiguous class, crowd)``."""
    out: dict[int, list[tuple[list[float], int, bool]]] = {}
    for i, ann in enumerate(_list(path, doc, "annotations")):
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
        # json reads NaN and Infinity literals; a negative size is a broken converter, not a rounding error
        if not all(math.isfinite(v) for v in bbox) or bbox[2] < 0 or bbox[3] < 0:
            raise DataError(f"{where}: bbox must be finite with width and height >= 0, got {bbox!r}")
        crowd = bool(ann.get("iscrowd", 0))
        out.setdefault(ann["image_id"], []).append((bbox, contiguous[ann["category_id"]], crowd))
    return out


def _boxes(anns: list, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pixel xyxy boxes clipped to the image; boxes with no area left after clipping are dropped and counted."""
    if not anns:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), 0
    xywh = np.asarray([a[0] for a in anns], dtype=np.float64)  # (n, 4)
    boxes, keep = clip_and_drop(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), width, height)
    classes = np.asarray([a[1] for a in anns], dtype=np.int64)
    crowd = np.asarray([a[2] for a in anns], dtype=bool)
    return boxes[keep].astype(np.float32), classes[keep], crowd[keep], int((~keep).sum())
