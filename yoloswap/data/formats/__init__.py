"""Data sets as users already have them: an Ultralytics data YAML, COCO JSON, Pascal VOC XML, or an exported
folder (:mod:`.folders`), read into one shape.

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
import logging
import warnings
from pathlib import Path
from types import ModuleType

from yoloswap.data.formats import coco, folders, ultralytics, voc
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

FORMATS: dict[str, ModuleType] = {"yolo": ultralytics, "ultralytics": ultralytics, "coco": coco, "voc": voc}
_log = logging.getLogger(__name__)
_SHOWN = 3  # skipped images / dropped boxes quoted in the warning


def load_data_config(path: str | Path) -> DataConfig:
    """Read a data YAML (Ultralytics, ``format: coco`` or ``format: voc``) or a data set folder in one of the
    layouts of :data:`folders.LAYOUTS`, and check that everything it names exists."""
    source = Path(path).expanduser().resolve()
    if source.is_dir():
        layout, source, doc = folders.recognise(source)
        if source.is_dir():  # a layout read from the folder itself: paths are relative to it
            doc.setdefault("path", str(source))
    elif source.is_file():
        layout, doc = "data YAML", folders.read_yaml(source)
    else:
        raise DataError(f"{source}: data YAML not found (nor a data set folder)")
    root = _resolve_root(source, doc)
    fmt = str(doc.get("format", "yolo")).lower()
    if fmt not in FORMATS:
        raise DataError(f"{source}: field 'format' must be one of {', '.join(sorted(FORMATS))}, got {doc['format']!r}")
    cfg = FORMATS[fmt].read_config(source, doc, root)
    notes = cfg.notes + ((doc["_note"],) if isinstance(doc.get("_note"), str) else ())
    cfg = dataclasses.replace(cfg, scanner=load_split, layout=layout, notes=notes)
    _log.info("%s: %s; classes: %s", source, layout, ", ".join(cfg.names))
    for note in notes:  # decisions the user should know about (and may want to pin in a YAML)
        warnings.warn(f"{source}: {note}", DataWarning, stacklevel=2)
    return cfg


def _resolve_root(source: Path, doc: dict) -> Path:
    """No ``path`` is the YAML's folder; a relative one is relative to the YAML's folder, or else, where only that
    exists, to the working folder (Ultralytics' reading of it), so YAMLs written for either tool read."""
    base = source if source.is_dir() else source.parent
    raw = doc.get("path")
    if raw is None:
        return base
    if not isinstance(raw, str):
        raise DataError(f"{source}: field 'path' must be a folder path, got {raw!r}")
    root = Path(raw).expanduser()
    if not root.is_absolute():
        root = base / root if (base / root).is_dir() or not root.resolve().is_dir() else root
    root = root.resolve()
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
