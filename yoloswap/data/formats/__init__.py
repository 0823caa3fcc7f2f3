"""Data sets as users already have them: an Ultralytics data YAML or a COCO JSON, read into one shape.

Every split becomes a tuple of :class:`Sample` records with boxes in pixels of the (EXIF-oriented) image, so
the dataset, the anchor check and the evaluator never care where the data came from.

Each format is one module behind the same two functions (the table :data:`FORMATS` maps a YAML's ``format:``
to it): ``read_config(source, doc, root) -> DataConfig`` checks that what the YAML names exists, and
``load_split(cfg, split_source) -> Split`` scans one split (through the label cache, :mod:`.cache`). Adding a
format is one module and one line in the table.

What bad input gets (README, "Errors"): malformed YAML, labels or JSON stop with one line naming the file (and
line or entry); unusable images are skipped and counted; boxes wholly outside their image are dropped and counted.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from types import ModuleType

import yaml

from yoloswap.data.formats import coco, ultralytics
from yoloswap.data.formats.common import (
    COORD_TOLERANCE,
    DataConfig,
    DataWarning,
    Sample,
    Split,
    SplitSource,
)
from yoloswap.data.formats.ultralytics import label_path_for, list_split_images, parse_label_file
from yoloswap.errors import DataError

__all__ = [
    "COORD_TOLERANCE", "FORMATS", "DataConfig", "DataWarning", "Sample", "Split", "SplitSource",
    "label_path_for", "list_split_images", "load_data_config", "load_split", "parse_label_file",
]  # fmt: skip

FORMATS: dict[str, ModuleType] = {"yolo": ultralytics, "ultralytics": ultralytics, "coco": coco}
_SHOWN = 3  # skipped images / dropped boxes quoted in the warning


def load_data_config(path: str | Path) -> DataConfig:
    """Read a data YAML (Ultralytics or ``format: coco``) and check that everything it names exists."""
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise DataError(f"{source}: data YAML not found")
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

    root = _resolve_root(source, doc)
    fmt = str(doc.get("format", "yolo")).lower()
    if fmt not in FORMATS:
        raise DataError(f"{source}: field 'format' must be 'yolo' or 'coco', got {doc['format']!r}")
    return dataclasses.replace(FORMATS[fmt].read_config(source, doc, root), scanner=load_split)


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


def load_split(cfg: DataConfig, src: SplitSource) -> Split:
    """One split through its format's loader; what was left out is warned about once, with counts."""
    split = FORMATS[cfg.format].load_split(cfg, src)
    what = ("skipped {} unreadable image(s)", "dropped boxes wholly outside the image in {} image(s)")
    for left_out, text in zip((split.skipped, split.dropped), what):
        if left_out:
            shown = "; ".join(left_out[:_SHOWN])
            more = f" (and {len(left_out) - _SHOWN} more)" if len(left_out) > _SHOWN else ""
            warnings.warn(f"{cfg.source}: split '{src.name}': {text.format(len(left_out))}: {shown}{more}",
                          DataWarning, stacklevel=3)  # fmt: skip
    if not split.samples:
        raise DataError(f"{cfg.source}: field '{src.name}': no usable images found")
    return split
