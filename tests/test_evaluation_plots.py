"""val --plots / the end of training: confusion matrix (png + csv), PR and F1 curves from the same matching."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from yoloswap.evaluation.coco import CocoAccumulator, EvalImage
from yoloswap.evaluation.metrics import confusion_matrix
from yoloswap.reports.charts import save_evaluation_plots

NAMES = ["cat", "dog"]


def _swapped_accumulator() -> CocoAccumulator:
    acc = CocoAccumulator(NAMES)
    truth = np.array([[10, 10, 60, 80], [100, 50, 200, 150]], float)
    acc.add(EvalImage(1, 320, 240, truth, np.array([0, 1])), np.array([[10, 10, 60, 80, 0.9, 1],
                                                                       [100, 50, 200, 150, 0.8, 1]]))
    acc.add(EvalImage(2, 320, 240, truth[:1], np.array([0])), np.array([[200, 150, 260, 200, 0.5, 0]]))
    acc.compute()
    return acc


def test_evaluation_plots_are_written_and_the_csv_holds_counts_and_shares(tmp_path):
    acc = _swapped_accumulator()
    matrix = confusion_matrix(acc.gt_dict(), acc.results())
    paths = save_evaluation_plots(acc.details, matrix, tmp_path, 0.25, 0.45)
    assert sorted(p.name for p in paths) == ["F1_curve.png", "PR_curve.png", "confusion_matrix.csv",
                                             "confusion_matrix.png"]
    for name in ("F1_curve.png", "PR_curve.png", "confusion_matrix.png"):
        with Image.open(tmp_path / name) as png:
            assert png.width >= 500 and png.height >= 400
    rows = list(csv.reader((tmp_path / "confusion_matrix.csv").open()))
    assert rows[0] == ["kind", "true \\ predicted", "cat", "dog", "background"]
    # a cat predicted as dog, the second cat missed, the dog found, one false cat on the background
    assert rows[1:4] == [["count", "cat", "0", "1", "1"], ["count", "dog", "0", "1", "0"],
                         ["count", "background", "1", "0", "0"]]
    assert rows[4] == ["share", "cat", "0.0000", "0.5000", "0.5000"]


def test_plots_of_a_detector_that_found_nothing_are_still_drawn(tmp_path):
    acc = CocoAccumulator(NAMES)
    acc.add(EvalImage(1, 320, 240, np.array([[10, 10, 60, 80]], float), np.array([0])), np.zeros((0, 6)))
    acc.compute()
    paths = save_evaluation_plots(acc.details, confusion_matrix(acc.gt_dict(), acc.results()), tmp_path, .25, .45)
    assert all(p.stat().st_size > 0 for p in paths)


def test_a_prediction_tile_with_nothing_above_the_threshold_says_so(tmp_path):
    from yoloswap.reports.plots import save_prediction_grid

    image = np.full((64, 64, 3), 114, np.uint8)
    truth = np.array([[10, 10, 40, 40, 0]], float)
    empty = save_prediction_grid([(image, np.array([[10, 10, 40, 40, 0.1, 0]]), truth)], NAMES, tmp_path / "a.png")
    found = save_prediction_grid([(image, np.array([[10, 10, 40, 40, 0.9, 0]]), truth)], NAMES, tmp_path / "b.png")
    top_of_predictions = (330, 4, 630, 30)  # the right tile's top strip, where the notice is written
    assert np.asarray(empty.crop(top_of_predictions)).max() == 255  # a white notice box
    assert np.asarray(found.crop(top_of_predictions)).max() < 255


def test_labels_of_overlapping_boxes_do_not_cover_each_other():
    from yoloswap.reports.plots import class_colour, draw_detections

    image = np.zeros((200, 200, 3), np.uint8)
    dets = np.array([[50, 60, 150, 150, 0.9, 0], [52, 62, 148, 148, 0.8, 1]])  # almost the same box
    drawn = np.asarray(draw_detections(image, dets, NAMES))
    column = {tuple(int(c) for c in drawn[y, 58]) for y in range(30, 100)}  # through both labels' left ends
    assert class_colour(0) in column and class_colour(1) in column  # both label backgrounds are visible
