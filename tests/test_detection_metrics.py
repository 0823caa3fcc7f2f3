"""Metrics beyond mAP: per-class AP agrees with pycocotools, P/R at the F1-optimal confidence, and confusion
matrices on cases whose answer is known by hand (perfect, two classes swapped, everything missed)."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest

from yoloswap.evaluation.coco import CocoAccumulator, EvalImage
from yoloswap.evaluation.metrics import confusion_matrix, normalise_rows

NAMES = ["cat", "dog", "bird"]


def _acc(images, dets) -> CocoAccumulator:
    acc = CocoAccumulator(NAMES)
    for (i, boxes, classes), d in zip(images, dets):
        acc.add(EvalImage(i, 320, 240, np.asarray(boxes, float).reshape(-1, 4), np.asarray(classes, int)),
                np.asarray(d, float).reshape(-1, 6))
    acc.compute()
    return acc


IMAGES = [(1, [[10, 10, 60, 80], [100, 50, 200, 150]], [0, 1]), (2, [[5, 5, 300, 200], [20, 20, 40, 40]], [2, 0])]
PERFECT = [[[10, 10, 60, 80, 0.9, 0], [100, 50, 200, 150, 0.8, 1]], [[5, 5, 300, 200, 0.7, 2], [20, 20, 40, 40, .6, 0]]]


def _pycocotools_per_category(gt: dict, results: list[dict]) -> dict[int, tuple[float, float]]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
    out = {}
    for k, cat in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        if (p > -1).any():
            out[cat] = (float(p[0][p[0] > -1].mean()), float(p[p > -1].mean()))
    return out


def test_per_class_ap_agrees_with_pycocotools_on_noisy_predictions():
    rng = np.random.default_rng(0)
    images, dets = [], []
    for i in range(1, 13):
        boxes = rng.uniform(0, 150, (4, 2))
        boxes = np.concatenate((boxes, boxes + rng.uniform(20, 80, (4, 2))), 1)
        classes = rng.integers(0, 3, 4)
        images.append((i, boxes, classes))
        noisy = boxes + rng.normal(0, 6, boxes.shape)
        d = np.concatenate((noisy, rng.uniform(0.05, 1, (4, 1)), rng.integers(0, 3, (4, 1))), 1)  # some wrong class
        false = np.array([[200, 100, 260, 180, rng.uniform(), rng.integers(0, 3)]])
        dets.append(np.concatenate((d, false)))
    acc = _acc(images, dets)
    reference = _pycocotools_per_category(acc.gt_dict(), acc.results())
    rows = {r.name: r for r in acc.details.rows}
    assert len(reference) == 3
    for cat, (ap50, ap) in reference.items():
        row = rows[NAMES[cat - 1]]
        assert row.ap50 == pytest.approx(ap50, abs=1e-6)
        assert row.ap == pytest.approx(ap, abs=1e-6)
    assert 0.0 < acc.details.overall.precision <= 1.0 and 0.0 < acc.details.overall.recall <= 1.0


def test_perfect_detector_has_precision_and_recall_one_and_a_diagonal_confusion_matrix():
    acc = _acc(IMAGES, PERFECT)
    d = acc.details
    assert [(r.name, r.images, r.instances) for r in d.rows] == [("cat", 2, 2), ("dog", 1, 1), ("bird", 1, 1)]
    assert (d.overall.images, d.overall.instances) == (2, 4)
    assert all(r.precision == pytest.approx(1.0) and r.recall == pytest.approx(1.0) for r in d.rows)
    assert d.overall.ap50 == pytest.approx(1.0)
    assert 0.0 < d.best_conf <= 0.6  # every detection (lowest score 0.6) is kept at the best threshold
    m = confusion_matrix(acc.gt_dict(), acc.results())
    assert m.tolist() == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_swapping_cat_and_dog_shows_off_the_diagonal():
    swapped = [[[10, 10, 60, 80, 0.9, 1], [100, 50, 200, 150, 0.8, 0]], [[5, 5, 300, 200, 0.7, 2], [20, 20, 40, 40, .6, 1]]]
    acc = _acc(IMAGES, swapped)
    m = confusion_matrix(acc.gt_dict(), acc.results())
    # rows: true cat, dog, bird, background; columns: predicted cat, dog, bird, background
    assert m.tolist() == [[0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert normalise_rows(m)[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    rows = {r.name: r for r in acc.details.rows}
    assert rows["cat"].ap50 == 0.0 and rows["bird"].ap50 == pytest.approx(1.0)


def test_a_detector_that_misses_everything_puts_every_box_in_the_background_column():
    acc = _acc(IMAGES, [[], [[250, 200, 300, 230, 0.9, 2]]])  # one false alarm far from any box
    m = confusion_matrix(acc.gt_dict(), acc.results())
    assert m.tolist() == [[0, 0, 0, 2], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert acc.details.overall.recall == 0.0 and acc.details.overall.ap50 == 0.0


def test_confusion_matrix_thresholds_are_settable():
    low = [[[10, 10, 60, 80, 0.1, 0]], []]
    acc = _acc(IMAGES, low)
    assert confusion_matrix(acc.gt_dict(), acc.results())[0, 0] == 0  # 0.1 < the default 0.25
    assert confusion_matrix(acc.gt_dict(), acc.results(), conf=0.05)[0, 0] == 1
    shifted = [[[30, 10, 80, 80, 0.9, 0]], []]  # IoU with the cat box = 30*70 / (70*70) = 0.43
    acc = _acc(IMAGES, shifted)
    assert confusion_matrix(acc.gt_dict(), acc.results())[0, 0] == 0
    assert confusion_matrix(acc.gt_dict(), acc.results(), iou=0.4)[0, 0] == 1


def test_no_predictions_still_counts_images_and_instances():
    acc = _acc(IMAGES, [[], []])
    assert [r.instances for r in acc.details.rows] == [2, 1, 1]
    assert acc.details.overall.precision == 0.0 and acc.details.best_conf == 0.0
