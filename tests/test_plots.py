"""Run pictures: results.png from a metrics CSV, detections drawn on images, and a grid of predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from yoloswap.reports.plots import (
    MAX_PANEL_COLUMNS,
    PANEL_SIZE,
    class_colour,
    draw_detections,
    plot_results,
    read_metrics_csv,
    save_prediction_grid,
)
from yoloswap.errors import DataError

NAMES = ["cat", "dog", "bird"]


def write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_results_png_has_one_chart_per_numeric_column(tmp_path):
    header = ["  epoch", " train/box_loss", "train/obj_loss", "val/mAP50", "val/mAP50-95", "lr0", "lr1", "note"]
    rows = [[e, 0.1 / (e + 1), 0.05 - e * 0.001, e * 0.1, e * 0.05, 0.01, 0.01 * (e + 1), "ok"] for e in range(6)]
    csv_path = write_csv(tmp_path / "results.csv", header, rows)
    out = plot_results(csv_path, tmp_path / "plots" / "results.png")

    with Image.open(out) as png:
        assert png.format == "PNG"
        # 6 metrics (epoch is the x axis, "note" is text): a row of 5 charts and a second row.
        assert png.size == (MAX_PANEL_COLUMNS * PANEL_SIZE[0], 2 * PANEL_SIZE[1])
        pixels = np.asarray(png.convert("RGB"))
    assert (pixels != 255).any(axis=2).mean() > 0.01  # something was drawn


def test_metrics_csv_reading_strips_headers_and_keeps_gaps(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv", [" epoch ", " loss", "map"], [[0, 1.0, ""], [1, 0.5, 0.2]])
    x, columns = read_metrics_csv(csv_path)
    assert x == [0.0, 1.0]
    assert list(columns) == ["loss", "map"]
    assert np.isnan(columns["map"][0]) and columns["map"][1] == 0.2


def test_single_epoch_and_empty_columns_still_plot(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv", ["epoch", "loss", "map"], [[0, 1.0, ""]])
    with Image.open(plot_results(csv_path, tmp_path / "r.png")) as png:
        assert png.size == (2 * PANEL_SIZE[0], PANEL_SIZE[1])


def test_missing_or_textual_metrics_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nope.csv"):
        plot_results(tmp_path / "nope.csv", tmp_path / "r.png")
    text_only = write_csv(tmp_path / "t.csv", ["epoch", "note"], [[0, "hello"]])
    with pytest.raises(DataError, match="no numeric columns"):
        plot_results(text_only, tmp_path / "r.png")


def test_boxes_are_drawn_in_their_class_colour(tmp_path):
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    dets = torch.tensor([[20.0, 40.0, 70.0, 100.0, 0.9, 0.0], [90.0, 40.0, 150.0, 110.0, 0.8, 2.0]])
    out = draw_detections(image, dets, NAMES, out_path=tmp_path / "pred.png")

    assert isinstance(out, Image.Image) and out.size == (160, 120)
    pixels = np.asarray(out)
    assert tuple(pixels[70, 20]) == class_colour(0)  # left edge of box 0, below its label
    assert tuple(pixels[75, 150]) == class_colour(2)  # right edge of box 2
    assert class_colour(0) != class_colour(2)
    assert tuple(pixels[70, 45]) == (0, 0, 0)  # inside a box: untouched
    assert (image == 0).all()  # the caller's array is not modified
    # The label ("cat 0.90") sits on a filled band above box 0.
    label_band = pixels[40 - 8 : 40, 22:40]
    assert (label_band != 0).any(axis=2).mean() > 0.8

    with Image.open(tmp_path / "pred.png") as png:
        assert png.format == "PNG" and png.size == (160, 120)


def test_low_scores_can_be_hidden_and_unknown_classes_still_draw():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    dets = np.array([[5, 20, 30, 60, 0.1, 0], [35, 20, 60, 60, 0.9, 7]])
    pixels = np.asarray(draw_detections(image, dets, NAMES, min_score=0.5))
    assert tuple(pixels[40, 5]) == (0, 0, 0)  # the 0.1 box is hidden
    assert tuple(pixels[40, 35]) == class_colour(7)  # class 7 has no name but is drawn


def test_draw_detections_rejects_non_rgb_arrays():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        draw_detections(np.zeros((8, 8), dtype=np.uint8), np.zeros((0, 6)), NAMES)


def test_prediction_grid_tiles_images(tmp_path):
    rng = np.random.default_rng(0)
    items = [
        (rng.integers(0, 255, (h, w, 3), dtype=np.uint8), np.array([[2, 2, 20, 20, 0.9, i % 3]]))
        for i, (h, w) in enumerate([(48, 64), (64, 48), (32, 32)])
    ]
    sheet = save_prediction_grid(items, NAMES, tmp_path / "val_pred.png", tile=96, columns=2)
    assert sheet.size == (2 * 96, 2 * 96)
    with Image.open(tmp_path / "val_pred.png") as png:
        assert png.format == "PNG" and png.size == (192, 192)


def test_train_and_val_columns_of_one_loss_share_a_chart(tmp_path):
    # Loss names vary by head (YOLOv8: box/cls/dfl): every train/* and val/* column is plotted, paired by name.
    header = ["epoch", "train/box_loss", "train/dfl_loss", "val/box_loss", "val/dfl_loss", "metrics/mAP50-95"]
    rows = [[e, 1 / (e + 1), 2 / (e + 1), 1.1 / (e + 1), 2.2 / (e + 1), 0.1 * e] for e in range(1, 4)]
    out = plot_results(write_csv(tmp_path / "m.csv", header, rows), tmp_path / "r.png")
    with Image.open(out) as png:  # 3 charts: box_loss (train + val), dfl_loss (train + val), mAP50-95
        assert png.size == (3 * PANEL_SIZE[0], PANEL_SIZE[1])


def test_prediction_grid_shows_ground_truth_beside_predictions(tmp_path):
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    truth = np.array([[8, 8, 40, 40, 1]])  # class 1, left tile
    dets = np.array([[20, 20, 56, 56, 0.9, 2]])  # class 2, right tile
    sheet = np.asarray(save_prediction_grid([(image, dets, truth)], NAMES, tmp_path / "g.png", tile=64))
    assert sheet.shape == (64, 128, 3)  # two tiles for one image
    assert tuple(sheet[30, 8]) == class_colour(1)  # truth box's left edge, in the left tile
    assert tuple(sheet[30, 64 + 55]) == class_colour(2)  # prediction's right edge, in the right tile
    assert tuple(sheet[30, 64 + 8]) != class_colour(1)  # no truth box on the prediction side
