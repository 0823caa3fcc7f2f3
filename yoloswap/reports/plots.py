"""Pictures of a run: training curves, the backbone comparison, and detections drawn on images.

Charts use matplotlib (the field's plotting library: axes, units, legends and readable ticks for free), through
its object API (``Figure``, no pyplot), so nothing global changes and it works on a headless server. Boxes on
images are drawn with Pillow, which needs no figure machinery and keeps pixels exact.
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

PANEL_SIZE = (320, 240)  # (width, height) of one chart in results.png
MAX_PANEL_COLUMNS = 5
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


def _panels(columns: dict[str, list[float]]) -> dict[str, dict[str, list[float]]]:
    """Group columns into charts: ``train/X`` and ``val/X`` share the chart ``X`` (so train and validation loss sit
    on one set of axes with a legend); every other column gets its own chart. Order follows the CSV."""
    panels: dict[str, dict[str, list[float]]] = {}
    for name, values in columns.items():
        prefix, _, rest = name.partition("/")
        key = rest if prefix in ("train", "val") and rest else name
        panels.setdefault(key, {})[name] = values
    return panels


def _y_label(panel: str) -> str:
    """The y-axis label of a results.png chart, from its column name."""
    if panel.endswith("_loss"):
        return "loss"
    if panel.startswith("lr"):
        return "learning rate"
    if panel.startswith("metrics/") or "mAP" in panel:
        return "score (0-1)"
    units = {"time/epoch_s": "seconds", "train/img_per_s": "images / s", "img_per_s": "images / s",
             "time/val_ms_per_img": "ms / image"}
    return units.get(panel, panel.rpartition("/")[2])


def plot_results(metrics_csv: Path, out_png: Path) -> Path:
    """One chart per metric of ``metrics_csv`` (any columns: loss names vary by head) into ``out_png``.

    ``train/X`` and ``val/X`` are drawn together; charts are laid out up to MAX_PANEL_COLUMNS per row, each
    PANEL_SIZE pixels, the x axis is the epoch.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    x, columns = read_metrics_csv(metrics_csv)
    if not columns:
        raise DataError(f"metrics file {metrics_csv} has no numeric columns to plot")
    panels = _panels(columns)
    n_cols = min(len(panels), MAX_PANEL_COLUMNS)
    n_rows = math.ceil(len(panels) / n_cols)
    dpi = 100
    fig = Figure(figsize=(n_cols * PANEL_SIZE[0] / dpi, n_rows * PANEL_SIZE[1] / dpi), dpi=dpi)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels.items()):
        for name, values in series.items():
            label = name.partition("/")[0] if len(series) > 1 else None
            ax.plot(x, values, marker="o" if len(x) <= 60 else None, markersize=3, linewidth=1.5, label=label)
        last = [v for v in next(iter(series.values())) if math.isfinite(v)]
        ax.set_title(title if not last or len(series) > 1 else f"{title} ({_format(last[-1])})", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(_y_label(title), fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        finite_x = [v for v in x if math.isfinite(v)]
        if finite_x and max(finite_x) - min(finite_x) < 2:  # 1-2 epochs: whole epochs, with room either side
            ax.set_xticks(sorted(set(int(v) for v in finite_x)))
            ax.set_xlim(min(finite_x) - 0.5, max(finite_x) + 0.5)
            seen = [v for vs in series.values() for v in vs if math.isfinite(v)]
            if seen and min(seen) >= 0 and max(seen) > 0:  # from zero, so one point is not drawn as a trend
                ax.set_ylim(0, 1.25 * max(seen))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png


def plot_compare(rows: Sequence[Any], out_png: Path, title: str = "") -> Path:
    """mAP@.5:.95 against latency, one labelled point per backbone, marker area by parameters, the Pareto front
    drawn as a step line, error bars where rows carry a std over seeds (rows are ``reports.compare.CompareRow``s,
    already Pareto-marked and labelled)."""
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("plot_compare needs at least one row")
    fig = Figure(figsize=(8, 5.5), dpi=110)
    ax = fig.subplots()
    params = np.array([r.params_m for r in rows], dtype=float)
    sizes = 40 + 400 * params / max(params.max(), 1e-9)  # marker area grows with parameters
    colours = ["tab:orange" if r.pareto else "tab:blue" for r in rows]
    ax.scatter([r.latency_ms for r in rows], [r.map for r in rows], s=sizes, c=colours, alpha=0.7,
               edgecolors="black", linewidths=0.6, zorder=3)
    seeded = [r for r in rows if getattr(r, "map_std", None) is not None]
    if seeded:  # compare --seeds: ±1 standard deviation of mAP over the seeds
        ax.errorbar([r.latency_ms for r in seeded], [r.map for r in seeded], yerr=[r.map_std for r in seeded],
                    fmt="none", ecolor="black", elinewidth=1, capsize=4, zorder=4,
                    label=f"± 1 std over {seeded[0].seeds} seeds")
    for r in rows:
        ax.annotate(f"{getattr(r, 'label', '') or r.backbone}\n{r.params_m:.1f} M", (r.latency_ms, r.map), textcoords="offset points",
                    xytext=(7, 5), fontsize=8)
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.latency_ms)
    if front:
        ax.step([r.latency_ms for r in front], [r.map for r in front], where="post", color="tab:orange",
                linewidth=1.5, zorder=2, label="Pareto front (no backbone both faster and more accurate)")
    if not all(r.pareto for r in rows):
        ax.scatter([], [], s=40, c="tab:blue", edgecolors="black", linewidths=0.6, label="dominated")
    first = rows[0]
    ax.set_xlabel(f"latency (ms per image, PyTorch, batch 1, {first.img_size} px, {first.device})")
    ax.set_ylabel("mAP@.5:.95 (COCO, validation split)")
    ax.set_title(title or "accuracy against speed (marker area: parameters)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.25, y=0.2)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    return out_png


# ----------------------------------------------------------------------------------------------- evaluation

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
    show_scores: bool = True,
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
    font = _font(max(12, round(max(width, height) / 40)))

    boxes = _as_dets(dets)
    boxes = boxes[boxes[:, 4] >= min_score]
    placed: list[tuple[float, float, float, float]] = []  # label rectangles drawn so far (highest scores first)
    labels = []
    for x1, y1, x2, y2, score, cls in boxes[np.argsort(-boxes[:, 4], kind="stable")]:
        cls = int(cls)
        colour = class_colour(cls)
        x1, x2 = sorted((min(max(x1, 0), width - 1), min(max(x2, 0), width - 1)))
        y1, y2 = sorted((min(max(y1, 0), height - 1), min(max(y2, 0), height - 1)))
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)

        label = names[cls] if 0 <= cls < len(names) else f"class {cls}"
        label = f"{label} {score:.2f}" if show_scores else label
        tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), label, font=font)
        tw, th = tx1 - tx0 + 4, ty1 - ty0 + 4
        lx = min(x1, max(width - tw, 0))
        ly = _free_label_y(lx, tw, th, (y1 - th, y1, y2, y2 - th), height, placed)
        placed.append((lx, ly, lx + tw, ly + th))
        labels.append(((lx, ly, lx + tw, ly + th), (lx + 2 - tx0, ly + 2 - ty0), label, colour))
    for rect, origin, label, colour in labels:  # labels over every box, so no box line crosses a label
        draw.rectangle(rect, fill=colour)
        draw.text(origin, label, fill=_text_colour(colour), font=font)

    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(out_path)
    return canvas


def _free_label_y(lx: float, tw: float, th: float, candidates: Sequence[float], height: int,
                  placed: Sequence[tuple[float, float, float, float]]) -> float:
    """The first of ``candidates`` (above the box, inside its top, below it, inside its bottom) where a label
    fits in the image without covering one already placed; the first that fits the image when none is free."""
    inside = [y for y in candidates if 0 <= y <= height - th] or [min(max(candidates[0], 0), max(height - th, 0))]
    for y in inside:
        if not any(lx < r[2] and r[0] < lx + tw and y < r[3] and r[1] < y + th for r in placed):
            return y
    return inside[0]


def _fit(image: Any, boxes: Any, tile: int) -> tuple[Image.Image, np.ndarray]:
    """``image`` resized to fit a ``tile`` square and its (K, 6) boxes scaled with it."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    scale = tile / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    boxes = _as_dets(boxes).copy()
    boxes[:, :4] *= scale  # only the coordinates scale
    return picture.convert("RGB").resize(size, Image.Resampling.BILINEAR), boxes


def _truth_as_dets(truth: Any) -> np.ndarray:
    """Ground truth (M, 5) [x1, y1, x2, y2, cls] as (M, 6) detections with score 1."""
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 5)
    return np.concatenate((truth[:, :4], np.ones((len(truth), 1)), truth[:, 4:5]), axis=1)


def _caption(sheet: Image.Image, xy: tuple[int, int], text: str, font, anchor: str) -> None:
    """Black text on a white box at ``xy`` (Pillow ``anchor``)."""
    draw = ImageDraw.Draw(sheet)
    box = draw.textbbox(xy, text, font=font, anchor=anchor)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(255, 255, 255))
    draw.text(xy, text, fill=(0, 0, 0), font=font, anchor=anchor)


def save_prediction_grid(
    items: Sequence[tuple],
    names: Sequence[str],
    out_path: Path,
    tile: int = 320,
    columns: int = 4,
    min_score: float = 0.25,
) -> Image.Image:
    """Tile a few ``(image, dets)`` or ``(image, dets, truth)`` items; with ``truth`` ((M, 5) [x1, y1, x2, y2,
    cls]) each image appears twice, ground truth on the left and predictions on the right, captioned.

    Images are resized before drawing, so labels stay readable however large the originals are. Each item takes
    ``tile`` pixels (two tiles with ground truth); ``columns`` items per row; tiles split by thin white lines.
    """
    if not items:
        raise ValueError("save_prediction_grid needs at least one image")
    with_truth = all(len(item) > 2 and item[2] is not None for item in items)
    per_item = 2 if with_truth else 1
    n_cols = min(columns, len(items))
    n_rows = math.ceil(len(items) / n_cols)
    sheet = Image.new("RGB", (n_cols * per_item * tile, n_rows * tile), _PAD_GREY)
    font = _font(max(11, tile // 22))
    for i, item in enumerate(items):
        row, col = divmod(i, n_cols)
        panels = [("predictions", item[1], True)]
        if with_truth:
            panels.insert(0, ("ground truth", _truth_as_dets(item[2]), False))
        for j, (caption, boxes, scored) in enumerate(panels):
            picture, scaled = _fit(item[0], boxes, tile)
            drawn = draw_detections(picture, scaled, names, min_score=min_score if scored else 0.0,
                                    show_scores=scored)
            x0, y0 = (col * per_item + j) * tile, row * tile
            sheet.paste(drawn, (x0 + (tile - drawn.width) // 2, y0 + (tile - drawn.height) // 2))
            if scored and not (_as_dets(boxes)[:, 4] >= min_score).any():
                _caption(sheet, (x0 + tile // 2, y0 + 6), f"no prediction scored >= {min_score:g}", font, "mt")
            if with_truth:
                _caption(sheet, (x0 + 4, y0 + tile - 4), caption, font, "lb")
    draw = ImageDraw.Draw(sheet)
    for col in range(1, n_cols * per_item):
        width = 3 if col % per_item == 0 else 1  # thicker between images than between an image's two tiles
        draw.line((col * tile, 0, col * tile, sheet.height), fill="white", width=width)
    for row in range(1, n_rows):
        draw.line((0, row * tile, sheet.width, row * tile), fill="white", width=3)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    return sheet
