"""Reading images the way their labels were drawn on them.

Two jobs, kept apart because they run at very different times:

* :func:`probe_image` runs once per file while a data set is scanned (and then never again, thanks to the
  label cache). It opens only the header, checks the file is not obviously broken, and reports the size *after*
  EXIF orientation, because that is the frame in which YOLO-format labels are normalised.
* :func:`read_image` decodes pixels for training and evaluation, every epoch, and returns the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from yoloswap.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_PIL_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "DIB", "WEBP"}  # MPO: phone JPEGs with a depth/preview frame
_EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = {5, 6, 7, 8}  # orientations that rotate by 90 degrees
_MIN_SIDE = 2
# --- bad-image limits (validation only; decoding is below) -------------------------------------------------------
# The largest image yoloswap decodes: 2**26 pixels (8192 x 8192, 192 MiB as RGB). Detection trains at 640 px, so
# anything bigger is a satellite tile to cut up first - or a decompression bomb (a few kB of PNG that inflate to
# gigabytes). The header is checked before any pixel is decoded, so memory stays bounded. This is below PIL's own
# limit (Image.MAX_IMAGE_PIXELS, ~89 M, which only warns) and OpenCV's (2**30), so ours is the one that applies.
MAX_IMAGE_PIXELS = 2**26


class CorruptImageError(DataError):
    """An image file that cannot be used; data set scans skip it and report why."""


@dataclass(frozen=True)
class ImageInfo:
    """Sizes of one image file: ``width``/``height`` after EXIF orientation, ``raw_*`` as stored."""

    width: int
    height: int
    raw_width: int
    raw_height: int


def is_image_file(path: Path) -> bool:
    """True for the file types yoloswap reads (by suffix, case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def probe_image(path: Path) -> ImageInfo:
    """Size of ``path`` without decoding its pixels; raises :class:`CorruptImageError` if it is unusable.

    ``verify()`` catches broken PNG chunks and unknown formats; JPEGs are checked for their end marker because a
    download cut short still has a valid header and would only fail mid-training.
    """
    check_not_empty(path)
    try:
        with Image.open(path) as im:
            fmt = im.format or "?"
            raw_w, raw_h = im.size
            check_pixel_count(path, raw_w, raw_h)  # before verify(), which may inflate compressed data
            im.verify()  # must come straight after open, so EXIF is read from a second open
        with Image.open(path) as im:
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CorruptImageError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    if fmt not in _PIL_FORMATS:
        raise CorruptImageError(f"{path}: unsupported image format {fmt} (use JPEG, PNG, BMP or WebP)")
    if min(raw_w, raw_h) < _MIN_SIDE:
        raise CorruptImageError(f"{path}: image is only {raw_w}x{raw_h} pixels")
    if fmt in ("JPEG", "MPO") and not _has_jpeg_end_marker(path):
        raise CorruptImageError(f"{path}: truncated JPEG (no end-of-image marker)")
    if orientation in _SWAPS_SIDES:
        return ImageInfo(width=raw_h, height=raw_w, raw_width=raw_w, raw_height=raw_h)
    return ImageInfo(width=raw_w, height=raw_h, raw_width=raw_w, raw_height=raw_h)


def check_not_empty(path: Path) -> None:
    """A zero-byte file (an interrupted copy) gets its own message rather than PIL's "cannot identify"."""
    try:
        empty = path.stat().st_size == 0
    except OSError as e:
        raise CorruptImageError(f"{path}: cannot read image ({e.strerror or e})") from None
    if empty:
        raise CorruptImageError(f"{path}: empty file (0 bytes)")


def check_pixel_count(path: Path, width: int, height: int) -> None:
    """Refuse an image whose header promises more than :data:`MAX_IMAGE_PIXELS` (call before decoding)."""
    if width * height > MAX_IMAGE_PIXELS:
        raise CorruptImageError(
            f"{path}: image is {width}x{height} = {width * height / 1e6:.0f} M pixels, over yoloswap's limit of "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} M (a decompression bomb, or a tile to cut up first)"
        )


def _has_jpeg_end_marker(path: Path) -> bool:
    """JPEG files end with FF D9; some writers append a few padding bytes, so look at the last 32."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 32))
        return b"\xff\xd9" in f.read()


def read_image(path: Path, apply_exif: bool = True) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array, EXIF-oriented unless ``apply_exif`` is False.

    Grayscale, palette, RGBA and 16-bit images all come back as 8-bit RGB (alpha is dropped), so everything
    downstream can assume one layout.
    """
    try:
        with Image.open(path) as im:
            check_pixel_count(path, *im.size)  # header only: refuse before the pixels are inflated
            im.load()
            if apply_exif:
                im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CorruptImageError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I;16") or im.mode == "I":
        # 16-bit grayscale: keep the top 8 bits instead of letting convert("RGB") clip everything to white.
        gray = (np.asarray(im, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)  # (H, W)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")  # resolves palette transparency before alpha is dropped
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()  # (H, W, 3), writable
