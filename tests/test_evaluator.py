"""COCO box mAP: exact values on hand-made cases, and agreement with pycocotools (the library of record)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from yoloswap.evaluation.coco import (
    CocoAccumulator,
    EvalImage,
    coco_gt_dict,
    detections_to_coco,
)

NAMES = ["cat", "dog", "bird"]


def image(image_id: int, boxes, classes, crowd=None, size=(320, 240)) -> EvalImage:
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    crowd = np.zeros(len(boxes), bool) if crowd is None else np.asarray(crowd, bool)
    return EvalImage(image_id, size[0], size[1], boxes, np.asarray(classes, int), crowd)


def dets(rows) -> np.ndarray:
    return np.asarray(rows, dtype=float).reshape(-1, 6)


def score(images, per_image_dets, names=NAMES, category_ids=None) -> dict:
    acc = CocoAccumulator(names, category_ids)
    for img, d in zip(images, per_image_dets):
        acc.add(img, d)
    return acc.compute()


def test_perfect_predictions_score_one():
    images = [image(1, [[10, 10, 60, 80], [100, 50, 200, 150]], [0, 1]), image(2, [[5, 5, 300, 200]], [2])]
    predictions = [
        dets([[10, 10, 60, 80, 0.9, 0], [100, 50, 200, 150, 0.8, 1]]),
        dets([[5, 5, 300, 200, 0.7, 2]]),
    ]
    m = score(images, predictions)
    assert m["map"] == pytest.approx(1.0)
    assert m["map50"] == pytest.approx(1.0)
    assert m["map75"] == pytest.approx(1.0)
    assert m["per_class"] == pytest.approx({"cat": 1.0, "dog": 1.0, "bird": 1.0})


def test_known_shift_passes_only_low_iou_thresholds():
    # 100x100 box predicted 20 px to the right: IoU = 80*100 / (120*100) = 0.667, which passes the
    # thresholds .50 .55 .60 .65 and fails .70 ... .95, so mAP@[.5:.95] = 4/10.
    images = [image(1, [[50, 50, 150, 150]], [0])]
    m = score(images, [dets([[70, 50, 170, 150, 0.9, 0]])])
    assert m["map50"] == pytest.approx(1.0)
    assert m["map75"] == pytest.approx(0.0)
    assert m["map"] == pytest.approx(0.4)


def test_missed_class_halves_map_and_shows_per_class():
    images = [image(1, [[10, 10, 60, 60], [100, 100, 150, 150]], [0, 1])]
    m = score(images, [dets([[10, 10, 60, 60, 0.9, 0]])])
    assert m["map"] == pytest.approx(0.5)
    # Only classes with ground truth are reported.
    assert m["per_class"] == pytest.approx({"cat": 1.0, "dog": 0.0})


def test_detections_inside_a_crowd_box_are_not_false_positives():
    boxes = [[10, 10, 60, 60], [150, 100, 300, 220]]  # one object, one crowd region
    # Two people found inside the crowd region (ranked first), and the real object.
    prediction = dets([[160, 110, 200, 160, 0.95, 0], [220, 120, 280, 200, 0.94, 0], [10, 10, 60, 60, 0.9, 0]])
    with_crowd = score([image(1, boxes, [0, 0], crowd=[False, True])], [prediction])
    assert with_crowd["map"] == pytest.approx(1.0)
    # Control: were the region an ordinary box, both would be false positives and the box a miss.
    without_crowd = score([image(1, boxes, [0, 0])], [prediction])
    assert without_crowd["map50"] < 0.5
    # A crowd region does not excuse a false positive elsewhere.
    elsewhere = dets([[200, 10, 250, 60, 0.99, 0], [10, 10, 60, 60, 0.9, 0]])
    assert score([image(1, boxes, [0, 0], crowd=[False, True])], [elsewhere])["map50"] < 1.0


def test_empty_predictions_and_empty_ground_truth_give_zero():
    images = [image(1, [[10, 10, 60, 60]], [0])]
    m = score(images, [dets([])])
    assert m["map"] == 0.0 and m["map50"] == 0.0 and m["map75"] == 0.0
    assert m["per_class"] == {}

    no_gt = [image(1, [], [])]
    m = score(no_gt, [dets([[10, 10, 60, 60, 0.9, 0]])])
    assert m["map"] == 0.0 and m["map50"] == 0.0
    assert all(v == 0.0 for k, v in m.items() if k != "per_class")


def test_sparse_coco_category_ids_are_mapped_back():
    gt = coco_gt_dict([image(7, [[0, 0, 10, 20]], [1])], ["person", "car"], category_ids=[1, 3])
    assert gt["categories"] == [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    assert gt["annotations"][0]["category_id"] == 3
    assert gt["annotations"][0]["bbox"] == [0.0, 0.0, 10.0, 20.0]
    assert gt["annotations"][0]["id"] >= 1  # COCO reads GT id 0 as "unmatched"

    res = detections_to_coco(7, torch.tensor([[0.0, 0.0, 10.0, 20.0, 0.5, 1.0]]), category_ids=[1, 3])
    assert res == [{"image_id": 7, "category_id": 3, "bbox": [0.0, 0.0, 10.0, 20.0], "score": 0.5}]
    # Without explicit ids, class c is category c + 1 (COCO reserves 0).
    assert detections_to_coco(7, dets([[0, 0, 1, 1, 0.5, 0]]), None)[0]["category_id"] == 1


def test_accumulator_takes_tensors_and_saves_json_results():
    acc = CocoAccumulator(NAMES)
    acc.add(image(1, [[10, 10, 60, 80]], [0]), torch.tensor([[10.0, 10.0, 60.0, 80.0, 0.9, 0.0]]))
    acc.add(image(2, [[20, 20, 90, 90]], [2]), torch.zeros(0, 6))
    assert len(acc) == 2
    results = json.loads(json.dumps(acc.results()))
    assert results == [{"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 50.0, 70.0], "score": 0.9}]
    m = acc.compute()
    assert m["per_class"] == pytest.approx({"cat": 1.0, "bird": 0.0})
    assert m["map"] == pytest.approx(0.5)


def test_library_prints_nothing_unless_verbose(capsys):
    acc = CocoAccumulator(NAMES)
    acc.add(image(1, [[10, 10, 60, 80]], [0]), dets([[10, 10, 60, 80, 0.9, 0]]))
    acc.compute()
    assert capsys.readouterr().out == ""
    acc.compute(verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def random_case(seed: int = 0):
    """A messy but deterministic case: jittered hits, misses, duplicates, false positives, crowd boxes."""
    rng = np.random.default_rng(seed)
    images, predictions = [], []
    for image_id in range(1, 13):
        n = int(rng.integers(0, 7))
        xy = rng.uniform(0, 400, size=(n, 2))
        wh = rng.uniform(4, 200, size=(n, 2))  # small, medium and large objects
        boxes = np.concatenate([xy, xy + wh], axis=1)
        classes = rng.integers(0, 3, size=n)
        crowd = rng.random(n) < 0.1
        images.append(EvalImage(image_id, 640, 480, boxes, classes, crowd))
        rows = []
        for box, cls in zip(boxes, classes):
            if rng.random() < 0.8:  # found, with jitter
                rows.append([*(box + rng.normal(0, 6, 4)), rng.random(), cls])
            if rng.random() < 0.2:  # a duplicate
                rows.append([*(box + rng.normal(0, 10, 4)), rng.random() * 0.5, cls])
        for _ in range(int(rng.integers(0, 4))):  # false positives
            x, y = rng.uniform(0, 500, 2)
            rows.append([x, y, x + rng.uniform(5, 120), y + rng.uniform(5, 120), rng.random(), rng.integers(0, 3)])
        predictions.append(dets(rows))
    return images, predictions


def pycocotools_stats(gt: dict, results: list[dict]) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_pycocotools(seed):
    images, predictions = random_case(seed)
    acc = CocoAccumulator(NAMES)
    for img, d in zip(images, predictions):
        acc.add(img, d)
    ours = acc.compute()
    reference = pycocotools_stats(acc.gt_dict(), acc.results())
    keys = ["map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100"]
    assert 0.05 < ours["map"] < 0.95  # a case that is neither trivial nor hopeless
    for key, expected in zip(keys, reference):
        assert ours[key] == pytest.approx(max(expected, 0.0), abs=1e-9), key
