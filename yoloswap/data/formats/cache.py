"""The label cache: a scanned split saved as one ``.npz`` next to the data, reused while the files are unchanged.

Scanning a split opens every image header and parses every label file, which takes minutes on COCO. The result
is cached (``<root>/<yaml stem>.<split>.cache.npz``, or under the user cache folder when the data root is
read-only) and reused while the file list, sizes and modification times stay the same. The cache holds only
arrays and strings (``allow_pickle=False``), so a planted cache file cannot run code.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from yoloswap.data.formats.common import DataConfig, DataWarning, Sample, Split
from yoloswap.home import yoloswap_home

CACHE_VERSION = "yoloswap-labels-v2"  # v2: boxes dropped outside the image are recorded


def fingerprint(head: Sequence[str], paths: Sequence[Path]) -> str:
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


def cache_path(cfg: DataConfig, split: str) -> Path:
    """``<data root>/<yaml stem>.<split>.cache.npz``, or under the user cache folder if the root is read-only."""
    local = cfg.root / f"{cfg.source.stem}.{split}.cache.npz"
    if os.access(cfg.root, os.W_OK):
        return local
    digest = hashlib.sha1(str(cfg.source).encode()).hexdigest()[:16]
    return yoloswap_home() / "label-cache" / f"{digest}.{split}.cache.npz"


def cached_files(cache: Path) -> list[Path] | None:
    """The file list a COCO cache was built from (the JSON is not parsed on a hit, so the list comes from here)."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            return [Path(p) for p in z["files"].tolist()]
    except (OSError, KeyError, ValueError, EOFError):
        return None


def read_cache(cache: Path, expected: str) -> Split | None:
    """The split stored in ``cache`` if its fingerprint is ``expected``; None for a stale or unreadable cache."""
    try:
        with np.load(cache, allow_pickle=False) as z:
            if str(z["fingerprint"]) != expected:
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
        dropped=tuple(arrays["dropped"].tolist()) if "dropped" in arrays else (),
    )


def write_cache(cache: Path, fp: str, split: Split, files: Sequence[Path]) -> None:
    """Write atomically (temp file + rename) so a killed run or a second process never sees half a cache."""
    s = split.samples
    arrays = {
        "fingerprint": np.array(fp),
        "name": np.array(split.name),
        "annotations": np.array(str(split.annotations) if split.annotations else ""),
        "files": np.array([str(p) for p in files], dtype=str),
        "skipped": np.array(list(split.skipped), dtype=str),
        "dropped": np.array(list(split.dropped), dtype=str),
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
