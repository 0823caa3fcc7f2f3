"""Pictures of a run: training curves and detections drawn on images.

Drawn with Pillow alone (already a dependency for image IO), so plotting adds nothing to install and works on a
headless training server. The charts are deliberately plain: one small line chart per metric, its min and max
on the y axis, first and last epoch on the x axis, and the latest value in the title.
"""

from __future__ import annotations

import colorsys
import csv
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from yoloswap.errors import DataError

PANEL_SIZE = (320, 220)  # (width, height) of one chart in results.png
MAX_PANEL_COLUMNS = 5
_MARGIN = {"left": 62, "right": 14, "top": 30, "bottom": 26}
_LINE = (31, 119, 180)
_AXIS = (90, 90, 90)
_GRID = (225, 225, 225)
_TEXT = (20, 20, 20)
_PAD_GREY = (114, 114, 114)  # the letterbox grey, so tiles look like what the model saw


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (no font files needed); its bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        return ImageFont.load_default()


def class_colour(cls: int) -> tuple[int, int, int]:
    """A bright colour per class; neighbouring class indices get far-apart hues (golden-ratio steps)."""
    hue = (int(cls) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light backgrounds, white on dark ones."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def _format(value: float) -> str:
    """Short tick labels: 0.0123, 1.23e-05, 512."""
    return f"{value:.4g}"


# ----------------------------------------------------------------------------------------------- curves


def read_metrics_csv(path: Path) -> tuple[list[float], dict[str, list[float]]]:
    """The x axis (the ``epoch`` column, else the row number) and every numeric column of a metrics CSV.

    Header names are stripped (YOLOv5 pads them); empty or non-finite cells become NaN gaps. A column with any
    non-numeric text is left out.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"metrics file {path} does not exist")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"metrics file {path} is empty (no header line)")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]

    columns: dict[str, list[float]] = {}
    for i, name in enumerate(header):
        values: list[float] = []
        for row in body:
            cell = row[i].strip() if i < len(row) else ""
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                break  # text: not a metric
        else:
            columns[name] = values

    epoch_key = next((k for k in columns if k.lower() == "epoch"), None)
    x = columns.pop(epoch_key) if epoch_key else [float(i) for i in range(len(body))]
    return x, columns


def _draw_chart(draw: ImageDraw.ImageDraw, origin: tuple[int, int], title: str, x: list[float], y: list[float]) -> None:
    """One line chart in a PANEL_SIZE box whose top-left corner is ``origin``."""
    ox, oy = origin
    w, h = PANEL_SIZE
    left, top = ox + _MARGIN["left"], oy + _MARGIN["top"]
    right, bottom = ox + w - _MARGIN["right"], oy + h - _MARGIN["bottom"]
    small, big = _font(11), _font(13)

    points = [(xi, yi) for xi, yi in zip(x, y) if math.isfinite(xi) and math.isfinite(yi)]
    last = next((yi for yi in reversed(y) if math.isfinite(yi)), None)
    draw.text((ox + w // 2, oy + 8), title if last is None else f"{title}  ({_format(last)})",
              fill=_TEXT, font=big, anchor="mt")
    draw.rectangle((left, top, right, bottom), outline=_AXIS)
    if not points:
        draw.text(((left + right) // 2, (top + bottom) // 2), "no data", fill=_AXIS, font=small, anchor="mm")
        return

    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if y_hi == y_lo:  # a flat line sits in the middle
        pad = abs(y_lo) * 0.05 or 1e-3
        y_lo, y_hi = y_lo - pad, y_hi + pad
    inset = 6  # keep markers off the frame

    def to_px(xv: float, yv: float) -> tuple[float, float]:
        px = left + inset + (xv - x_lo) / (x_hi - x_lo) * (right - left - 2 * inset)
        py = bottom - inset - (yv - y_lo) / (y_hi - y_lo) * (bottom - top - 2 * inset)
        return px, py

    # Min/max gridlines with their labels; first/last x labels.
    for value in (y_lo, y_hi):
        _, py = to_px(x_lo, value)
        draw.line((left + 1, py, right - 1, py), fill=_GRID)
        draw.text((left - 5, py), _format(value), fill=_TEXT, font=small, anchor="rm")
    for value, anchor in ((x_lo, "lt"), (x_hi, "rt")):
        px, _ = to_px(value, y_lo)
        draw.text((px, bottom + 5), _format(value), fill=_TEXT, font=small, anchor=anchor)

    # The line, broken where a value is missing.
    segment: list[tuple[float, float]] = []
    for xi, yi in zip(x, y):
        if math.isfinite(xi) and math.isfinite(yi):
            segment.append(to_px(xi, yi))
            continue
        if len(segment) > 1:
            draw.line(segment, fill=_LINE, width=2)
        segment = []
    if len(segment) > 1:
        draw.line(segment, fill=_LINE, width=2)
    if len(points) <= 60:  # markers help while there are few epochs
        for xi, yi in points:
            px, py = to_px(xi, yi)
            draw.ellipse((px - 2.5, py - 2.5, px + 2.5, py + 2.5), fill=_LINE)


def plot_results(metrics_csv: Path, out_png: Path) -> Path:
    """Draw one small chart per numeric column of ``metrics_csv`` (all but ``epoch``) into ``out_png``.

    The grid has up to MAX_PANEL_COLUMNS charts per row, each PANEL_SIZE pixels.
    """
    x, columns = read_metrics_csv(metrics_csv)
    if not columns:
        raise DataError(f"metrics file {metrics_csv} has no numeric columns to plot")
    n_cols = min(len(columns), MAX_PANEL_COLUMNS)
    n_rows = math.ceil(len(columns) / n_cols)
    canvas = Image.new("RGB", (n_cols * PANEL_SIZE[0], n_rows * PANEL_SIZE[1]), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (name, values) in enumerate(columns.items()):
        row, col = divmod(i, n_cols)
        _draw_chart(draw, (col * PANEL_SIZE[0], row * PANEL_SIZE[1]), name, x, values)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_png)
    return out_png


# ----------------------------------------------------------------------------------------------- detections


def _as_dets(dets: Any) -> np.ndarray:
    """Detections as a (K, 6) float array, from a tensor, array or list."""
    if hasattr(dets, "detach"):  # torch tensor
        dets = dets.detach().float().cpu().numpy()
    return np.asarray(dets, dtype=np.float64).reshape(-1, 6)


def draw_detections(
    image: np.ndarray | Image.Image,
    dets: Any,
    names: Sequence[str],
    out_path: Path | None = None,
    min_score: float = 0.0,
) -> Image.Image:
    """Draw boxes ``(K, 6) [x1, y1, x2, y2, score, cls]`` (image pixels) with "name score" labels.

    ``image`` is HxWx3 uint8 RGB (or a PIL image); it is not modified. Higher scores are drawn last, on top.
    """
    if isinstance(image, Image.Image):
        canvas = image.convert("RGB")
    else:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {array.shape} dtype {array.dtype}")
        canvas = Image.fromarray(array)  # copies, so the caller's array is untouched
    draw = ImageDraw.Draw(canvas)
    width, height = canvas.size
    line = max(2, round(max(width, height) / 250))
    font = _font(max(11, round(max(width, height) / 48)))

    boxes = _as_dets(dets)
    boxes = boxes[boxes[:, 4] >= min_score]
    for x1, y1, x2, y2, score, cls in boxes[np.argsort(boxes[:, 4], kind="stable")]:
        cls = int(cls)
        colour = class_colour(cls)
        x1, x2 = sorted((min(max(x1, 0), width - 1), min(max(x2, 0), width - 1)))
        y1, y2 = sorted((min(max(y1, 0), height - 1), min(max(y2, 0), height - 1)))
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)

        label = f"{names[cls] if 0 <= cls < len(names) else f'class {cls}'} {score:.2f}"
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), label, font=font)
        tw, th = tx1 - tx0 + 4, ty1 - ty0 + 4
        above = y1 - th >= 0  # label sits on top of the box, or just inside it at the image edge
        lx = min(x1, max(width - tw, 0))
        ly = y1 - th if above else y1
        draw.rectangle((lx, ly, lx + tw, ly + th), fill=colour)
        draw.text((lx + 2 - tx0, ly + 2 - ty0), label, fill=_text_colour(colour), font=font)

    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(out_path)
    return canvas


def save_prediction_grid(
    items: Sequence[tuple[np.ndarray, Any]],
    names: Sequence[str],
    out_path: Path,
    tile: int = 320,
    columns: int = 4,
    min_score: float = 0.25,
) -> Image.Image:
    """Tile a few ``(image, dets)`` pairs, each fitted into a square tile and then drawn with its boxes.

    Images are resized before drawing, so labels stay readable however large the originals are. The sheet is
    ``min(columns, n) * tile`` wide and ``ceil(n / columns) * tile`` high, tiles separated by thin white lines.
    """
    if not items:
        raise ValueError("save_prediction_grid needs at least one image")
    n_cols = min(columns, len(items))
    n_rows = math.ceil(len(items) / n_cols)
    sheet = Image.new("RGB", (n_cols * tile, n_rows * tile), _PAD_GREY)
    for i, (image, dets) in enumerate(items):
        picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        scale = tile / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        boxes = _as_dets(dets).copy()
        boxes[:, :4] *= scale  # (K, 6): only the coordinates scale
        drawn = draw_detections(picture.convert("RGB").resize(size, Image.Resampling.BILINEAR), boxes, names,
                                min_score=min_score)
        row, col = divmod(i, n_cols)
        sheet.paste(drawn, (col * tile + (tile - size[0]) // 2, row * tile + (tile - size[1]) // 2))
    draw = ImageDraw.Draw(sheet)
    for col in range(1, n_cols):
        draw.line((col * tile, 0, col * tile, sheet.height), fill="white")
    for row in range(1, n_rows):
        draw.line((0, row * tile, sheet.width, row * tile), fill="white")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    return sheet
