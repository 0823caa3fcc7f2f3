"""Reading images the way their labels were drawn on them.

Two jobs, kept apart because they run at very different times:

* :func:`probe_image` runs once per file while a data set is scanned (and then never again, thanks to the
  label cache). It opens only the header, checks the file is not obviously broken, and reports the size *after*
  EXIF orientation, because that is the frame in which YOLO-format labels are normalised.
* :func:`read_image` decodes pixels for training and evaluation, every epoch, and returns the same frame.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
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

cv2.setNumThreads(0)  # see transforms.py: a cv2 thread pool in the parent hangs forked DataLoader workers


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


def read_image(path: Path, apply_exif: bool = True, reduce: int = 1) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array, EXIF-oriented unless ``apply_exif`` is False.

    Grayscale, palette, RGBA and 16-bit images all come back as 8-bit RGB (alpha is dropped), so everything
    downstream can assume one layout. This runs for every image of every training step, so the common layouts
    (8-bit JPEG and PNG) are decoded by OpenCV straight to RGB, about twice as fast as PIL plus a conversion, and
    oriented here from the EXIF tag; PIL is opened only when the file carries EXIF, and decodes whatever else.

    ``reduce`` (2, 4 or 8) lets a JPEG decode straight to 1/reduce of its size, rounded up (libjpeg scales in the
    DCT, several times faster than decoding everything and resizing); other files come back at full size, so the
    caller checks which size it got.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CorruptImageError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    like_pil, has_exif = _inspect(data)
    if not like_pil:
        return _read_with_pil(path, apply_exif)
    orientation = _exif_orientation(path, data) if apply_exif and has_exif else 1
    scale = _JPEG_SCALE[reduce] if data.startswith(b"\xff\xd8") else 0
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION | scale)
    if img is None or img.ndim != 3 or img.dtype != np.uint8:
        return _read_with_pil(path, apply_exif)  # PIL then names what is wrong with the file
    return _ORIENT[orientation](img) if orientation in _ORIENT else img


# What PIL's ImageOps.exif_transpose does for each EXIF orientation, as OpenCV calls on (H, W, 3) arrays.
_ORIENT = {
    2: lambda im: cv2.flip(im, 1),  # mirrored left-right
    3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
    4: lambda im: cv2.flip(im, 0),  # mirrored top-bottom
    5: lambda im: cv2.transpose(im),
    6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    7: lambda im: cv2.rotate(cv2.transpose(im), cv2.ROTATE_180),
    8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
}
# Decode-time downscaling: OpenCV's REDUCED_GRAYSCALE_N flags are the bare scale bits (their COLOR twins may not be
# combined with IMREAD_COLOR_RGB).
_JPEG_SCALE = {1: 0, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_EXIF = (b"eXIf", b"Raw profile type exif")  # the EXIF chunk, and ImageMagick's text chunk that PIL also reads
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def _inspect(data: bytes) -> tuple[bool, bool]:
    """(OpenCV decodes the file to the same 8-bit RGB as PIL's convert("RGB"), the file may carry EXIF).

    OpenCV takes 8-bit PNG (gray, RGB, palette, RGBA) and gray or YCbCr JPEG. CMYK JPEG, 16-bit PNG and the
    other formats go to PIL, whose conversions are the reference. A stray EXIF match only costs a header read.
    """
    if data.startswith(_PNG_SIGNATURE):
        like_pil = len(data) > 25 and data[24] == 8 and data[25] in (0, 2, 3, 6)  # IHDR bit depth, colour type
        return like_pil, any(marker in data for marker in _PNG_EXIF)
    if data.startswith(b"\xff\xd8"):
        components, has_exif = _jpeg_header(data)
        return components in (1, 3), has_exif
    return False, True


def _jpeg_header(data: bytes) -> tuple[int, bool]:
    """Walk a JPEG's segments up to its frame header: (colour components, 1 gray / 3 YCbCr / 4 CMYK, or 0 if no
    frame header was found; whether an EXIF segment came before it, which is where EXIF must be)."""
    pos, has_exif = 2, False
    while pos + 9 < len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in _JPEG_SOF:
            return data[pos + 9], has_exif  # FF Cn, length (2), precision (1), height (2), width (2), components
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        has_exif |= marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00"  # APP1
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return 0, has_exif


def _exif_orientation(path: Path, data: bytes) -> int:
    """The EXIF orientation tag (1 when absent), read from the header alone."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CorruptImageError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def _read_with_pil(path: Path, apply_exif: bool) -> np.ndarray:
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
