"""Charts of an evaluation and of a data set (matplotlib): the confusion matrix, PR and F1 curves, and the
labels' statistics (class histogram, box centres, box sizes). Run-folder pictures of training itself (results.png,
val_predictions.png, compare.png) are in :mod:`yoloswap.reports.plots`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yoloswap.reports.plots import class_colour


MAX_ANNOTATED_CLASSES = 30  # confusion-matrix cells carry their numbers up to this many classes
MAX_LEGEND_CLASSES = 12  # PR curves: a legend entry per class up to this many


def _save(fig, out_png: Path, dpi: int = 110) -> Path:
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
    return out_png


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], out_png: Path, conf: float, iou: float) -> Path:
    """The (K+1, K+1) ``matrix[true, predicted]`` (last row and column: background) twice, side by side: as
    counts, and normalised per true class (each row sums to 1: where that class's boxes went)."""
    from matplotlib.figure import Figure
    from yoloswap.evaluation.metrics import normalise_rows

    labels = [*names, "background"]
    n = len(labels)
    side = min(max(4.0, 0.45 * n + 2), 16)
    fig = Figure(figsize=(2 * side + 1, side), dpi=110)
    axes = fig.subplots(1, 2)
    shares = normalise_rows(matrix)
    for ax, values, title, fmt in ((axes[0], matrix, "counts", "{:.0f}"),
                                   (axes[1], shares, "normalised per true class", "{:.2f}")):
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=max(float(values.max()), 1e-9))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n), labels, rotation=90 if n > 8 else 45, ha="right" if n <= 8 else "center",
                      fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"confusion matrix, {title}\n(confidence >= {conf:g}, IoU > {iou:g})", fontsize=10)
        if n <= MAX_ANNOTATED_CLASSES:
            top = float(values.max()) or 1.0
            for (i, j), v in np.ndenumerate(values):
                if v:
                    ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                            color="white" if v > 0.6 * top else "black")
    return _save(fig, out_png)


def plot_pr_curve(details: Any, out_png: Path) -> Path:
    """Precision against recall at IoU 0.5, one thin line per class (its AP50 in the legend) and the mean over
    classes in bold (with the mAP50). ``details`` is an ``evaluation.metrics.Details``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5.5), dpi=110)
    ax = fig.subplots()
    has = ~np.isnan(details.pr[:, 0]) if len(details.pr) else np.zeros(0, bool)
    legend = int(has.sum()) <= MAX_LEGEND_CLASSES
    for row, curve, present in zip(details.rows, details.pr, has):
        if present:
            ax.plot(details.recall_points, curve, linewidth=1, alpha=0.8,
                    label=f"{row.name} {row.ap50:.3f}" if legend else None)
    if has.any():
        ax.plot(details.recall_points, details.pr[has].mean(0), linewidth=3, color="tab:blue",
                label=f"all classes {details.overall.ap50:.3f} mAP@0.5")
    _unit_axes(ax, "recall", "precision", "precision-recall curve (IoU 0.5)")
    return _save(fig, out_png)


def plot_f1_curve(details: Any, out_png: Path) -> Path:
    """F1 against the confidence threshold: one thin line per class and the mean over classes in bold, its best
    threshold marked (the one the per-class table's P and R are read at)."""
    from matplotlib.figure import Figure
    from yoloswap.evaluation.metrics import CONF_GRID

    fig = Figure(figsize=(7, 5.5), dpi=110)
    ax = fig.subplots()
    has = ~np.isnan(details.f1[:, 0]) if len(details.f1) else np.zeros(0, bool)
    for curve, present in zip(details.f1, has):
        if present:
            ax.plot(CONF_GRID, curve, linewidth=1, alpha=0.5, color="grey")
    mean = details.mean_f1
    best = int(np.argmin(np.abs(CONF_GRID - details.best_conf)))
    ax.plot(CONF_GRID, mean, linewidth=3, color="tab:blue", label="mean F1 over classes (thin: per class)")
    ax.axvline(details.best_conf, color="tab:orange", linestyle="--",
               label=f"best: F1 {mean[best]:.3f} at confidence {details.best_conf:.2f}")
    ax.plot([details.best_conf], [mean[best]], "o", color="tab:orange")
    _unit_axes(ax, "confidence threshold", "F1 (harmonic mean of precision and recall)", "F1-confidence curve")
    return _save(fig, out_png)


def _unit_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")


def save_evaluation_plots(details: Any, matrix: np.ndarray, folder: Path, conf: float, iou: float) -> list[Path]:
    """confusion_matrix.png / .csv, PR_curve.png and F1_curve.png into ``folder``; returns their paths."""
    from yoloswap.evaluation.metrics import write_confusion_csv

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [plot_confusion_matrix(matrix, details.names, folder / "confusion_matrix.png", conf, iou),
            write_confusion_csv(matrix, details.names, folder / "confusion_matrix.csv"),
            plot_pr_curve(details, folder / "PR_curve.png"), plot_f1_curve(details, folder / "F1_curve.png")]


# ----------------------------------------------------------------------------------------------- detections


def plot_labels(classes: np.ndarray, boxes: np.ndarray, names: Sequence[str], out_path: str | Path) -> Path:
    """``labels.png``: boxes per class, box centres, and box width against height, all relative to the image.

    ``classes`` (n,) and ``boxes`` (n, 4) ``cx cy w h`` in [0, 1] (:func:`yoloswap.data.check.label_arrays`).
    Tells at a glance an unbalanced set, labels bunched in one corner, or boxes too small for the strides.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.2), dpi=100)
    hist, centres, sizes = fig.subplots(1, 3)
    counts = np.bincount(np.asarray(classes, np.int64), minlength=len(names))[: len(names)]
    hist.bar(range(len(names)), counts, color=[np.array(class_colour(i)) / 255 for i in range(len(names))])
    hist.set_xticks(range(len(names)), [str(n) for n in names], rotation=45 if len(names) > 6 else 0,
                    ha="right" if len(names) > 6 else "center", fontsize=8 if len(names) > 20 else 9)  # fmt: skip
    hist.set(xlabel="class", ylabel="boxes", title=f"boxes per class ({int(counts.sum())} in all)")
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    for ax, (x, y), (xl, yl), title in (
        (centres, (b[:, 0], b[:, 1]), ("box centre x / image width", "box centre y / image height"), "box centres"),
        (sizes, (b[:, 2], b[:, 3]), ("box width / image width", "box height / image height"), "box sizes"),
    ):
        ax.scatter(x, y, s=4, alpha=min(1.0, max(0.15, 400 / max(len(b), 1))), color="tab:blue", linewidths=0)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=xl, ylabel=yl, title=title, aspect="equal")
        ax.grid(alpha=0.3)
    centres.invert_yaxis()  # image rows grow downwards
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    return out_path
