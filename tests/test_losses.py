"""YOLOv5 loss and target assignment, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from yoloswap.losses import YOLOv5Loss, build_targets

# One level, one 16x16 px anchor, stride 8, 32x32 px images -> a 4x4 grid.
ANCHORS = torch.tensor([[[16.0, 16.0]]])
STRIDES = (8,)
# Image 0, class 1, centre (10, 22) px = (1.25, 2.75) cells, size 16x24 px = 2x3 cells.
TARGET = torch.tensor([[0, 1, 10.0, 22.0, 16.0, 24.0]])
# The centre sits in cell (x=1, y=2), in the left quarter of it and in the bottom quarter of it, so it also
# trains the left neighbour (0, 2) and the lower neighbour (1, 3). Box xy relative to each cell's corner.
EXPECTED_CELLS = {(1, 2): (0.25, 0.75), (0, 2): (1.25, 0.75), (1, 3): (0.25, -0.25)}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def bce(logit: float, target: float) -> float:
    p = sigmoid(logit)
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def ciou(pred: tuple[float, ...], true: tuple[float, ...]) -> float:
    """Complete-IoU of two (cx, cy, w, h) boxes, written out from the paper's definition."""
    (px, py, pw, ph), (tx, ty, tw, th) = pred, true
    ix = max(0.0, min(px + pw / 2, tx + tw / 2) - max(px - pw / 2, tx - tw / 2))
    iy = max(0.0, min(py + ph / 2, ty + th / 2) - max(py - ph / 2, ty - th / 2))
    inter = ix * iy
    iou = inter / (pw * ph + tw * th - inter)
    cw = max(px + pw / 2, tx + tw / 2) - min(px - pw / 2, tx - tw / 2)
    chh = max(py + ph / 2, ty + th / 2) - min(py - ph / 2, ty - th / 2)
    centre_distance2 = (px - tx) ** 2 + (py - ty) ** 2
    v = 4 / math.pi**2 * (math.atan(tw / th) - math.atan(pw / ph)) ** 2
    alpha = v / (1 - iou + v)
    return iou - centre_distance2 / (cw**2 + chh**2) - alpha * v


def test_build_targets_assigns_own_cell_and_two_nearest_neighbours():
    raw = torch.zeros(1, 1, 4, 4, 7)
    (level,) = build_targets([raw], TARGET, ANCHORS, STRIDES)
    xs, ys = level.box[:, :2].T.tolist()
    cells = {(gi, gj): (x, y) for gi, gj, x, y in zip(level.gi.tolist(), level.gj.tolist(), xs, ys)}
    assert cells.keys() == EXPECTED_CELLS.keys()
    for cell, xy in EXPECTED_CELLS.items():
        assert cells[cell] == pytest.approx(xy)
    assert torch.allclose(level.box[:, 2:], torch.tensor([[2.0, 3.0]] * 3))  # wh in cells
    assert torch.allclose(level.anchor_wh, torch.tensor([[2.0, 2.0]] * 3))  # anchor in cells
    assert level.cls.tolist() == [1, 1, 1] and level.image.tolist() == [0, 0, 0]


def test_build_targets_skips_neighbours_beyond_the_border_and_shape_mismatched_anchors():
    anchors = torch.tensor([[[16.0, 16.0], [200.0, 200.0]]])  # the second is > 4x bigger than the box
    raw = torch.zeros(1, 2, 4, 4, 7)
    # centre (0.25, 0.25) cells: near the left/top border, but there is no cell beyond it
    (level,) = build_targets([raw], torch.tensor([[0, 0, 2.0, 2.0, 16.0, 16.0]]), anchors, STRIDES)
    assert list(zip(level.anchor.tolist(), level.gi.tolist(), level.gj.tolist())) == [(0, 0, 0)]
    (none,) = build_targets([raw], torch.zeros(0, 6), anchors, STRIDES)
    assert none.image.numel() == 0


def test_loss_equals_hand_computed_value():
    torch.manual_seed(0)
    raw = torch.randn(2, 1, 4, 4, 7)  # batch of 2; image 1 has no objects
    criterion = YOLOv5Loss(num_classes=2, anchors=ANCHORS, strides=STRIDES, img_size=32, balance=(4.0,))
    loss, items = criterion([raw.clone().requires_grad_()], TARGET)

    # --- the same numbers worked out cell by cell ---
    box_terms, cls_terms, obj_target = [], [], {}
    for (gi, gj), (tx, ty) in EXPECTED_CELLS.items():
        p = raw[0, 0, gj, gi].tolist()
        pred_box = (
            2 * sigmoid(p[0]) - 0.5,
            2 * sigmoid(p[1]) - 0.5,
            (2 * sigmoid(p[2])) ** 2 * 2.0,  # anchor = 2 cells
            (2 * sigmoid(p[3])) ** 2 * 2.0,
        )
        c = ciou(pred_box, (tx, ty, 2.0, 3.0))
        box_terms.append(1 - c)
        obj_target[(gj, gi)] = max(c, 0.0)
        cls_terms += [bce(p[5], 0.0), bce(p[6], 1.0)]  # one-hot for class 1
    obj_terms = [
        bce(raw[b, 0, y, x, 4].item(), obj_target.get((y, x), 0.0) if b == 0 else 0.0)
        for b in range(2)
        for y in range(4)
        for x in range(4)
    ]
    num_levels, num_classes, img_size = 1, 2, 32
    box = 0.05 * 3 / num_levels * sum(box_terms) / 3
    obj = 1.0 * (img_size / 640) ** 2 * 3 / num_levels * 4.0 * sum(obj_terms) / 32
    cls = 0.5 * num_classes / 80 * 3 / num_levels * sum(cls_terms) / 6

    assert items.tolist() == pytest.approx([box, obj, cls], rel=1e-5)
    assert loss.item() == pytest.approx((box + obj + cls) * 2, rel=1e-5)
    assert not items.requires_grad and loss.requires_grad


def test_single_class_has_no_class_loss_and_empty_targets_only_objectness():
    torch.manual_seed(0)
    raw = torch.randn(1, 1, 4, 4, 6)
    criterion = YOLOv5Loss(num_classes=1, anchors=ANCHORS, strides=STRIDES, img_size=32, balance=(1.0,))
    _, items = criterion([raw], TARGET)
    assert items[2].item() == 0.0 and items[0].item() > 0
    loss, items = criterion([raw], torch.zeros(0, 6))
    expected_obj = sum(bce(v, 0.0) for v in raw[..., 4].flatten().tolist()) / 16 * (32 / 640) ** 2 * 3
    assert items.tolist() == pytest.approx([0.0, expected_obj, 0.0], rel=1e-5)
    assert loss.item() == pytest.approx(expected_obj, rel=1e-5)


def test_default_gains_follow_classes_levels_and_image_size():
    anchors = torch.ones(3, 3, 2)
    criterion = YOLOv5Loss(num_classes=20, anchors=anchors, strides=(8, 16, 32), img_size=320)
    assert criterion.box_gain == pytest.approx(0.05)
    assert criterion.cls_gain == pytest.approx(0.5 * 20 / 80)
    assert criterion.obj_gain == pytest.approx(0.25)
    assert criterion.balance == (4.0, 1.0, 0.4)


def test_three_level_loss_is_float32_under_low_precision_and_backpropagates():
    from yoloswap.models.head import COCO_ANCHORS

    anchors = torch.tensor(COCO_ANCHORS, dtype=torch.float32)
    outputs = [torch.randn(2, 3, 64 // s, 64 // s, 8, dtype=torch.bfloat16, requires_grad=True) for s in (8, 16, 32)]
    targets = torch.tensor([[0, 2, 30.0, 30.0, 20.0, 20.0], [1, 0, 40.0, 20.0, 50.0, 60.0]])
    criterion = YOLOv5Loss(num_classes=3, anchors=anchors, strides=(8, 16, 32), img_size=64)
    loss, items = criterion(outputs, targets)
    assert loss.dtype == torch.float32 and items.shape == (3,) and torch.isfinite(items).all()
    loss.backward()
    assert all(o.grad is not None for o in outputs)


def test_loss_sees_anchors_changed_in_place_on_the_head():
    anchors = ANCHORS.clone()
    criterion = YOLOv5Loss(num_classes=2, anchors=anchors, strides=STRIDES, img_size=32, balance=(1.0,))
    anchors.mul_(100)  # e.g. AutoAnchor rewriting the head's buffer: the 16x24 box no longer matches
    _, items = criterion([torch.zeros(1, 1, 4, 4, 7)], TARGET)
    assert items[0].item() == 0.0
