"""A folder as ``--data``: the layouts labelling tools and hubs export, each recognised and turned into the same
document a data YAML would be, so the format table (:data:`yoloswap.data.formats.FORMATS`) reads it.

Adding a layout is one function here and one line in :data:`LAYOUTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from yoloswap.data.formats import voc
from yoloswap.errors import DataError

COCO_JSON = "_annotations.coco.json"  # Roboflow's COCO export: one per split folder


def read_yaml(source: Path) -> dict:
    """A data YAML as a mapping (safe_load: plain values only); every problem is one line naming the file."""
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as e:  # e.g. !!python/object: safe_load refuses to build objects
        where = f" line {e.problem_mark.line + 1}" if e.problem_mark else ""
        raise DataError(f"{source}:{where}: {e.problem} (data YAML may hold only plain values: Python tags are "
                        "refused)") from None  # fmt: skip
    except yaml.YAMLError as e:
        raise DataError(f"{source}: not valid YAML ({e})".replace("\n", " ")) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{source}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{source}: expected a mapping with 'train', 'val' and 'names'")
    return doc


def _data_yaml(folder: Path) -> tuple[Path, dict] | None:
    for name in ("data.yaml", "data.yml"):
        if (folder / name).is_file():
            return folder / name, read_yaml(folder / name)
    return None


def _voc_devkit(folder: Path) -> tuple[Path, dict] | None:
    if not voc.is_devkit(folder):
        return None
    main = folder / "ImageSets" / "Main"
    doc: dict = {"format": "voc"}
    for key, choices in (("train", voc.TRAIN_SETS), ("val", voc.VAL_SETS)):
        found = next((main / f"{c}.txt" for c in choices if (main / f"{c}.txt").is_file()), None)
        if found is None:
            raise DataError(f"{folder}: VOC devkit has none of {', '.join(c + '.txt' for c in choices)} in {main}")
        doc[key] = str(found)
    return folder, doc


def _roboflow_coco(folder: Path) -> tuple[Path, dict] | None:
    def split(*names: str) -> dict | None:
        d = next((folder / n for n in names if (folder / n / COCO_JSON).is_file()), None)
        return None if d is None else {"images": str(d), "annotations": str(d / COCO_JSON)}

    train, val, test = split("train"), split("valid", "val"), split("test")
    if train is None or val is None:
        return None
    return folder, {"format": "coco", "train": train, "val": val, **({"test": test} if test else {})}


def _label_studio(folder: Path) -> tuple[Path, dict] | None:
    classes = folder / "classes.txt"
    if not ((folder / "images").is_dir() and (folder / "labels").is_dir() and classes.is_file()):
        return None
    names = [line.strip() for line in classes.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise DataError(f"{classes}: no class names (one per line)")
    if (folder / "images" / "train").is_dir() and (folder / "images" / "val").is_dir():
        return folder, {"train": "images/train", "val": "images/val", "names": names}
    return folder, {"train": "images", "val": "images", "names": names,
                    "_note": "no val split in images/: validating on the training images"}  # fmt: skip


# (name logged when found, recognise(folder) -> (source, data document) or None), tried in this order
LAYOUTS: tuple[tuple[str, Callable[[Path], tuple[Path, dict] | None]], ...] = (
    ("data.yaml (Roboflow / Ultralytics export)", _data_yaml),
    ("Pascal VOC devkit (Annotations/, ImageSets/Main/)", _voc_devkit),
    (f"Roboflow COCO export (train/, valid/ with {COCO_JSON})", _roboflow_coco),
    ("Label Studio YOLO export (images/, labels/, classes.txt)", _label_studio),
)


def recognise(folder: Path) -> tuple[str, Path, dict]:
    """The first layout ``folder`` matches: its name, the source to name in errors, and the data document."""
    for name, match in LAYOUTS:
        found = match(folder)
        if found is not None:
            return (name, *found)
    looked = "; ".join(name for name, _ in LAYOUTS)
    raise DataError(f"{folder}: not a data set folder yoloswap knows (looked for: {looked})")
