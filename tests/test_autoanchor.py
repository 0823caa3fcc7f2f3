"""AutoAnchor: recall of the anchors on the training boxes, and anchors evolved for boxes COCO's anchors miss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yoloswap.data.formats import Sample
from yoloswap.training.autoanchor import MIN_BPR, best_possible_recall, check_anchors, evolve_anchors, training_box_sizes
from yoloswap.assembly import DetectorPlan
from yoloswap.models.head import COCO_ANCHORS, YOLOv5Head
from yoloswap.models.yolov8_head import YOLOv8Head

COCO = np.asarray(COCO_ANCHORS, dtype=np.float64).reshape(-1, 2)
PLAN = DetectorPlan((64, 128, 256), (8, 16, 32), (64, 128, 256), 1, 2)


def sample(boxes, width=1280, height=640, crowd=None):
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    crowd = np.zeros(len(boxes), dtype=bool) if crowd is None else np.asarray(crowd)
    return Sample(Path("img.jpg"), 0, width, height, boxes, np.zeros(len(boxes), dtype=np.int64), crowd)


def thin_and_wide_samples(n=40, seed=0):
    """Long, thin boxes (lines, text, poles): at 640 px up to 12x wider than tall, or 12x taller than wide."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = rng.uniform(200, 400), rng.uniform(8, 16)
        if i % 2:
            w, h = h, w
        out.append(sample([[10, 10, 10 + 2 * w, 10 + 2 * h]]))  # a 1280-wide image: halved at 640
    return out


def test_box_sizes_are_measured_at_the_training_size_without_crowds():
    s = sample([[0, 0, 200, 100], [0, 0, 40, 40]], width=1280, height=640, crowd=[False, True])
    wh = training_box_sizes([s], img_size=640, seed=0)
    assert wh.shape == (1, 2)
    assert 0.9 * 100 <= wh[0, 0] <= 1.1 * 100 and wh[0, 0] / wh[0, 1] == pytest.approx(2.0)  # same random scale


def test_best_possible_recall_uses_the_side_ratio_threshold():
    anchors = np.array([[10.0, 10.0]])
    wh = np.array([[10.0, 10.0], [39.0, 10.0], [41.0, 10.0], [10.0, 2.4]])
    assert best_possible_recall(anchors, wh) == pytest.approx(0.5)  # 41/10 and 10/2.4 are beyond 4x


def test_coco_anchors_miss_thin_boxes_and_evolved_anchors_recall_them():
    wh = training_box_sizes(thin_and_wide_samples(), 640)
    assert best_possible_recall(COCO, wh) < 0.5
    anchors = evolve_anchors(wh, n=9, seed=0)
    assert best_possible_recall(anchors, wh) >= MIN_BPR
    areas = anchors.prod(axis=1)
    assert (np.diff(areas) >= 0).all()  # smallest first: they go to stride 8
    assert np.array_equal(anchors, evolve_anchors(wh, n=9, seed=0))  # seeded: the same anchors every time


def test_check_anchors_installs_better_anchors_in_the_head_and_the_plan():
    head = YOLOv5Head((8, 8, 8), num_classes=2, strides=(8, 16, 32))
    loss = head.make_loss(640)  # built before: must see the new anchors too
    lines = []
    plan = check_anchors(head, PLAN, thin_and_wide_samples(), 640, lines.append, seed=0)
    new = head.anchors.view(-1, 2).double().numpy()
    assert not np.allclose(new, COCO)
    assert best_possible_recall(new, training_box_sizes(thin_and_wide_samples(), 640)) >= MIN_BPR
    assert torch.equal(loss.anchors, head.anchors)
    assert np.allclose(np.asarray(plan.anchors).reshape(-1, 2), new)
    assert "below 0.98" in lines[0] and "->" in lines[1]
    # Areas grow with the level: the smallest anchors sit on stride 8.
    per_level = head.anchors.prod(dim=-1)  # (3, 3)
    assert per_level[0].max() <= per_level[1].min() and per_level[1].max() <= per_level[2].min()


def test_anchors_that_fit_are_kept_and_anchor_free_heads_are_left_alone():
    head = YOLOv5Head((8, 8, 8), num_classes=2, strides=(8, 16, 32))
    fits = [sample([[0, 0, 60, 80], [0, 0, 300, 260], [0, 0, 40, 40]])]
    lines = []
    assert check_anchors(head, PLAN, fits, 640, lines.append) is PLAN
    assert torch.equal(head.anchors, torch.tensor(COCO_ANCHORS, dtype=torch.float32))
    assert "fit the data" in lines[0]
    free = YOLOv8Head((8, 8, 8), num_classes=2, strides=(8, 16, 32))
    assert check_anchors(free, PLAN, thin_and_wide_samples(), 640, lines.append) is PLAN and len(lines) == 1


def thin_box_set(root: Path) -> Path:
    """An Ultralytics-layout set of 64 px images with long thin bars, which no COCO anchor can learn."""
    from PIL import Image

    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(4):
            img = np.full((64, 64, 3), 120, dtype=np.uint8)
            y = 8 + 12 * i
            img[y : y + 4, 2:62] = (230, 40, 40)
            Image.fromarray(img).save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text(f"0 0.5 {(y + 2) / 64:.6f} {60 / 64:.6f} {4 / 64:.6f}\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [bar]\n")
    return root / "data.yaml"


def test_training_evolves_anchors_into_the_checkpoint_unless_told_not_to(cli, tmp_path):
    from yoloswap.checkpoint import load_checkpoint

    data = thin_box_set(tmp_path / "data")
    tiny = ["--backbone", "yolov5n", "--epochs", "1", "--img-size", "64", "--batch-size", "4", "--workers", "0",
            "--device", "cpu", "--data", str(data)]
    code, _, err = cli("train", *tiny, "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert "autoanchor: best possible recall 0.0000 is below 0.98" in err and "-> 1.0000" in err
    ckpt = load_checkpoint(tmp_path / "run" / "weights" / "last.pt")
    evolved = ckpt["model"]["head.anchors"]
    assert not torch.equal(evolved, torch.tensor(COCO_ANCHORS, dtype=torch.float32))
    assert torch.allclose(torch.tensor(ckpt["plan"]["anchors"]), evolved)
    assert best_possible_recall(evolved.view(-1, 2).double().numpy(), np.array([[60.0, 4.0]])) == 1.0

    code, _, err = cli("train", *tiny, "--no-autoanchor", "--out", str(tmp_path / "plain"))
    assert code == 0, err
    assert "autoanchor" not in err
    plain = load_checkpoint(tmp_path / "plain" / "weights" / "last.pt")["model"]["head.anchors"]
    assert torch.equal(plain, torch.tensor(COCO_ANCHORS, dtype=torch.float32))
