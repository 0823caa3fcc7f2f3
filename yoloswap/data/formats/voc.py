"""Pascal VOC: ``Annotations/*.xml``, ``JPEGImages/``, and image sets ``ImageSets/Main/<set>.txt``.

A devkit folder (``VOCdevkit/VOC2007``) reads as it is (:mod:`.folders`): training on ``trainval`` (or
``train`` where there is none), validation on ``test`` (or ``val``). A YAML names several sets, e.g. VOC07+12::

    format: voc
    path: VOCdevkit
    train: [VOC2007/ImageSets/Main/trainval.txt, VOC2012/ImageSets/Main/trainval.txt]
    val: VOC2007/ImageSets/Main/test.txt
    names: [aeroplane, bicycle, ...]       # optional: else the XMLs' names, sorted

Each set's devkit is the folder two levels above its ``.txt``. VOC boxes are 1-based pixel corners; they become
0-based ``x1 - 1, y1 - 1, x2, y2``. ``difficult`` objects are kept as ``crowd`` boxes: never training targets,
and evaluation ignores detections on them, as VOC's own scoring does. XML is parsed with defusedxml, which
refuses entity expansion, so an XML bomb from a hub stops with one line.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from yoloswap.data.formats import cache as label_cache
from yoloswap.data.formats.common import (
    DataConfig,
    Sample,
    Split,
    SplitSource,
    collect_splits,
    parse_names,
    probe_all,
    under,
)
from yoloswap.errors import DataError

TRAIN_SETS = ("trainval", "train")  # the first that exists is the training set of a devkit folder
VAL_SETS = ("test", "val")


def is_devkit(folder: Path) -> bool:
    return (folder / "Annotations").is_dir() and (folder / "ImageSets" / "Main").is_dir()


def read_config(source: Path, doc: dict, root: Path) -> DataConfig:
    def build(key: str, raw: Any) -> SplitSource:
        entries = []
        for item in raw if isinstance(raw, list) else [raw]:
            p = under(root, item)
            if not p.is_file() or p.suffix.lower() != ".txt":
                raise DataError(f"{source}: field '{key}': {p} is not a VOC image set (ImageSets/Main/<set>.txt)")
            entries.append(p)
        return SplitSource(name=key, entries=tuple(entries))

    splits = collect_splits(source, doc, build)
    notes: tuple[str, ...] = ()
    if doc.get("names") is not None:
        names = parse_names(source, doc)
    else:
        found = sorted({name for s in splits.values() if not s.problem for _, xml in _items(s) for name in
                        _object_names(xml)})  # fmt: skip
        if not found:
            raise DataError(f"{source}: no <object> in the VOC XMLs, so no class names (give 'names:')")
        names = tuple(found)
        notes = (f"class names sorted from the XMLs: {', '.join(names)} (give 'names:' to fix their order)",)
    return DataConfig(names=names, category_ids=None, source=source, root=root, format="voc",
                      split_sources=splits, notes=notes)  # fmt: skip


def _items(src: SplitSource) -> list[tuple[Path, Path]]:
    """``(image, xml)`` per id of the split's sets; a set's devkit is two folders above its .txt."""
    out = []
    for txt in src.entries:
        devkit = txt.parent.parent.parent
        try:
            ids = [line.split()[0] for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{txt}: cannot read VOC image set ({e})") from None
        for i in ids:
            out.append((devkit / "JPEGImages" / f"{i}.jpg", devkit / "Annotations" / f"{i}.xml"))
    return out


def _parse(xml: Path) -> ET.Element:
    try:
        return SafeET.parse(xml).getroot()
    except DefusedXmlException as e:
        raise DataError(f"{xml}: refused: {type(e).__name__} (entities are not allowed in annotation XML)") from None
    except ET.ParseError as e:
        raise DataError(f"{xml}: not valid XML ({e})") from None
    except OSError as e:
        raise DataError(f"{xml}: cannot read VOC annotation ({e.strerror or e})") from None


def _object_names(xml: Path) -> list[str]:
    return [(o.findtext("name") or "").strip() for o in _parse(xml).iter("object")]


def _boxes(xml: Path, index: dict[str, int], width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (0-based pixel xyxy), classes and difficult flags of one XML; any bad object is one line."""
    boxes, classes, difficult = [], [], []
    for k, obj in enumerate(_parse(xml).iter("object")):
        where = f"{xml}: <object> #{k + 1}"
        name = (obj.findtext("name") or "").strip()
        if name not in index:
            raise DataError(f"{where}: <name>{name}</name> is not in names ({', '.join(index)})")
        bb = obj.find("bndbox")
        if bb is None:
            raise DataError(f"{where} ({name}): missing <bndbox>")
        try:
            x1, y1, x2, y2 = (float(bb.findtext(t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise DataError(f"{where} ({name}): <bndbox> values must be numbers") from None
        x1, y1 = x1 - 1, y1 - 1  # 1-based pixel corners -> 0-based edges
        if not (np.isfinite([x1, y1, x2, y2]).all() and 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise DataError(f"{where} ({name}): <bndbox> {x1 + 1:g},{y1 + 1:g},{x2:g},{y2:g} is outside the "
                            f"{width}x{height} image or empty")  # fmt: skip
        boxes.append((x1, y1, x2, y2))
        classes.append(index[name])
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64),
            np.asarray(difficult, bool))  # fmt: skip


def load_split(cfg: DataConfig, src: SplitSource) -> Split:
    """Probe every image and parse its XML (or read the cache when nothing changed)."""
    items = _items(src)
    paths = [p.absolute() for p, _ in items]
    xmls = [x for _, x in items]
    fingerprint = label_cache.fingerprint([label_cache.CACHE_VERSION, "voc", json.dumps(cfg.names)], paths + xmls)
    cache = label_cache.cache_path(cfg, src.name)
    cached = label_cache.read_cache(cache, fingerprint)
    if cached is not None:
        return cached
    index = {n: i for i, n in enumerate(cfg.names)}
    samples, skipped = [], []
    for image_id, (path, xml, info) in enumerate(zip(paths, xmls, probe_all(paths))):
        if isinstance(info, str):
            skipped.append(info)
            continue
        boxes, classes, difficult = _boxes(xml, index, info.width, info.height)
        samples.append(Sample(path, image_id, info.width, info.height, boxes, classes, difficult))
    split = Split(name=src.name, samples=tuple(samples), skipped=tuple(skipped))
    label_cache.write_cache(cache, fingerprint, split, files=paths)
    return split
