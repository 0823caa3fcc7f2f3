"""Box conversions, IoU, YOLOv5 decoding, anchor points and distance boxes, and NMS post-processing of the
head-independent detection rows, on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from yoloswap import ops


def test_xywh_xyxy_round_trip():
    xywh = torch.tensor([[50.0, 40.0, 20.0, 10.0], [0.0, 0.0, 4.0, 6.0]])
    xyxy = ops.xywh2xyxy(xywh)
    assert xyxy.tolist() == [[40.0, 35.0, 60.0, 45.0], [-2.0, -3.0, 2.0, 3.0]]
    assert torch.allclose(ops.xyxy2xywh(xyxy), xywh)
    assert ops.xywh2xyxy(torch.zeros(2, 3, 4)).shape == (2, 3, 4)  # any leading shape


def test_box_iou_pairwise():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    assert torch.allclose(ops.box_iou(a, b), torch.tensor([[1.0, 50 / 150, 0.0]]))


def test_ciou_of_identical_boxes_is_one_and_penalises_distance_and_shape():
    box = torch.tensor([[5.0, 5.0, 4.0, 2.0]])
    assert ops.bbox_ciou(box, box).item() == pytest.approx(1.0, abs=1e-5)
    # Same size, shifted by 2 along x: IoU = 2*2 / (8+8-4) = 1/3; enclosing box 6x2, diagonal^2 40; centres 4 apart.
    shifted = torch.tensor([[7.0, 5.0, 4.0, 2.0]])
    assert ops.bbox_ciou(box, shifted).item() == pytest.approx(1 / 3 - 4 / 40, abs=1e-5)
    # Same centre, different aspect: IoU = 4/8, plus the aspect term v*alpha.
    tall = torch.tensor([[5.0, 5.0, 2.0, 4.0]])
    iou = 4 / (8 + 8 - 4)
    v = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(4 / 2)) ** 2
    alpha = v / (v - iou + 1)
    # enclosing 4x4, centres coincide -> no distance term
    assert ops.bbox_ciou(box, tall).item() == pytest.approx(iou - v * alpha, abs=1e-5)


def _ciou_by_hand(pred: torch.Tensor, target: torch.Tensor, alpha_has_gradient: bool) -> torch.Tensor:
    """CIoU of one pair of xywh boxes, written out from the paper (no eps), alpha detached or not."""
    (px, py, pw, ph), (tx, ty, tw, th) = pred.unbind(-1), target.unbind(-1)
    iw = (torch.minimum(px + pw / 2, tx + tw / 2) - torch.maximum(px - pw / 2, tx - tw / 2)).clamp(min=0)
    ih = (torch.minimum(py + ph / 2, ty + th / 2) - torch.maximum(py - ph / 2, ty - th / 2)).clamp(min=0)
    iou = iw * ih / (pw * ph + tw * th - iw * ih)
    cw = torch.maximum(px + pw / 2, tx + tw / 2) - torch.minimum(px - pw / 2, tx - tw / 2)
    ch = torch.maximum(py + ph / 2, ty + th / 2) - torch.minimum(py - ph / 2, ty - th / 2)
    rho2 = (px - tx) ** 2 + (py - ty) ** 2
    v = 4 / math.pi**2 * (torch.atan(tw / th) - torch.atan(pw / ph)) ** 2
    alpha = v / (v - iou + 1)
    if not alpha_has_gradient:
        alpha = alpha.detach()
    return iou - rho2 / (cw**2 + ch**2) - alpha * v


def test_ciou_alpha_carries_no_gradient():
    """The CIoU paper (and YOLOv5) treat alpha as a constant: the gradient is that of IoU − ρ²/c² − α·v with α
    frozen. A case with a large aspect mismatch, where the two choices differ by far more than the tolerance."""
    target = torch.tensor([5.5, 5.0, 1.0, 3.0])
    grads = {}
    for label, fn in (("ops", None), ("detached", False), ("with_gradient", True)):
        pred = torch.tensor([5.0, 5.0, 4.0, 1.0], requires_grad=True)
        value = ops.bbox_ciou(pred[None], target[None])[0] if fn is None else _ciou_by_hand(pred, target, fn)
        value.backward()
        grads[label] = pred.grad
    assert (grads["with_gradient"] - grads["detached"]).abs().max() > 1e-2  # the case tells the two apart
    assert torch.allclose(grads["ops"], grads["detached"], atol=1e-5), grads


def one_level_output(h=4, w=4, na=1, nc=2, fill=-20.0):
    """A raw level where every logit is very negative (sigmoid ~ 0)."""
    return torch.full((1, na, h, w, 5 + nc), fill)


def test_decode_formula_and_row_order():
    anchors = torch.tensor([[[10.0, 20.0]], [[40.0, 30.0]]])  # two levels, one anchor each
    p3 = one_level_output(h=4, w=4)
    p4 = one_level_output(h=2, w=2)
    p3[0, 0, 1, 2, :4] = 0.0  # sigmoid 0.5: xy = cell + 0.5, wh = anchor
    p4[0, 0, 1, 0, :2] = 20.0  # sigmoid ~1: xy = cell + 1.5
    p4[0, 0, 1, 0, 2:4] = 20.0  # wh = 4 * anchor
    p4[0, 0, 1, 0, 4:] = 0.0
    decoded = ops.decode([p3, p4], anchors, strides=(8, 16))
    assert decoded.shape == (1, 16 + 4, 7) and decoded.dtype == torch.float32
    # row = a*H*W + y*W + x within a level, levels concatenated
    assert torch.allclose(decoded[0, 1 * 4 + 2, :4], torch.tensor([2.5 * 8, 1.5 * 8, 10.0, 20.0]))
    assert torch.allclose(decoded[0, 16 + 1 * 2 + 0], torch.tensor([1.5 * 16, 2.5 * 16, 160.0, 120.0, 0.5, 0.5, 0.5]))
    assert decoded[0, 0, 4].item() == pytest.approx(0.0, abs=1e-6)  # objectness sigmoided


def detections(rows, num_classes=2):
    """Detection rows [x1, y1, x2, y2, class scores...] (what every head decodes to) from hand-written
    (cx, cy, w, h, obj, class probabilities...): score = objectness x class, as the YOLOv5 head forms it."""
    t = torch.tensor([rows], dtype=torch.float32).view(1, -1, 5 + num_classes)
    return torch.cat((ops.xywh2xyxy(t[..., :4]), t[..., 5:] * t[..., 4:5]), dim=-1)


def test_postprocess_suppresses_overlapping_same_class_and_keeps_other_classes():
    decoded = detections(
        [
            [50, 50, 20, 20, 0.9, 1.0, 0.0],  # class 0, best
            [51, 50, 20, 20, 0.8, 1.0, 0.0],  # class 0, overlaps the best -> suppressed
            [51, 50, 20, 20, 0.7, 0.0, 1.0],  # same place, class 1 -> kept
            [150, 50, 20, 20, 0.6, 1.0, 0.0],  # class 0, far away -> kept
        ]
    )
    (out,) = ops.postprocess(decoded, conf_thres=0.25, iou_thres=0.45)
    assert out.shape == (3, 6)
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert out[:, 5].tolist() == [0.0, 1.0, 0.0]
    assert out[0, :4].tolist() == [40.0, 40.0, 60.0, 60.0]


def test_postprocess_thresholds_the_class_score():
    decoded = detections(
        [
            [50, 50, 20, 20, 0.5, 0.6, 0.0],  # score 0.30 -> kept
            [150, 50, 20, 20, 0.9, 0.2, 0.0],  # score 0.18 -> dropped
            [250, 50, 20, 20, 0.2, 1.0, 0.0],  # objectness below threshold -> dropped
        ]
    )
    (out,) = ops.postprocess(decoded, conf_thres=0.25, iou_thres=0.45)
    assert out.shape == (1, 6)
    assert out[0, 4].item() == pytest.approx(0.30)


def test_postprocess_multi_label_keeps_each_class_above_threshold():
    decoded = detections([[50, 50, 20, 20, 1.0, 0.8, 0.5]])
    (multi,) = ops.postprocess(decoded, conf_thres=0.25, iou_thres=0.45, multi_label=True)
    (single,) = ops.postprocess(decoded, conf_thres=0.25, iou_thres=0.45, multi_label=False)
    assert sorted(multi[:, 5].tolist()) == [0.0, 1.0]
    assert single[:, 5].tolist() == [0.0] and single[0, 4].item() == pytest.approx(0.8)


def test_postprocess_max_det_keeps_the_best():
    rows = [[50 + 30 * i, 50, 20, 20, 0.3 + 0.05 * i, 1.0, 0.0] for i in range(10)]  # disjoint boxes
    (out,) = ops.postprocess(detections(rows), conf_thres=0.25, iou_thres=0.45, max_det=3)
    assert out[:, 4].tolist() == pytest.approx([0.75, 0.7, 0.65])


def test_postprocess_handles_batches_and_empty_images():
    decoded = torch.cat((detections([[50, 50, 20, 20, 0.9, 1.0, 0.0]]), detections([[50, 50, 20, 20, 0.1, 1.0, 0.0]])))
    first, second = ops.postprocess(decoded, ops.EVAL_CONF * 200, ops.EVAL_IOU)
    assert first.shape == (1, 6) and second.shape == (0, 6)
    (none,) = ops.postprocess(torch.zeros(1, 0, 6), ops.PREDICT_CONF, ops.PREDICT_IOU, multi_label=False)
    assert none.shape == (0, 6)


def test_postprocess_drops_degenerate_giant_boxes():
    rows = detections([[50, 50, 20, 20, 0.9, 1.0, 0.0], [5000, 50, 9000, 20, 0.9, 0.0, 1.0]])
    (out,) = ops.postprocess(rows, conf_thres=0.25, iou_thres=0.45, max_wh=7680)
    assert out[:, 5].tolist() == [0.0]


def test_anchor_points_are_cell_centres_level_by_level():
    points, strides = ops.make_anchor_points([(2, 3), (1, 2)], (8, 16), torch.device("cpu"))
    assert points.tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5],
                               [0.5, 0.5], [1.5, 0.5]]
    assert strides.view(-1).tolist() == [8.0] * 6 + [16.0] * 2


def test_distances_and_boxes_round_trip_and_clamp():
    points = torch.tensor([[5.0, 5.0], [1.0, 1.0]])
    boxes = torch.tensor([[2.0, 3.0, 9.0, 6.0], [0.0, 0.0, 30.0, 2.0]])
    dist = ops.bbox2dist(points, boxes, max_dist=15)
    assert dist[0].tolist() == [3.0, 2.0, 4.0, 1.0]  # left, top, right, bottom
    assert dist[1].tolist() == pytest.approx([1.0, 1.0, 14.99, 1.0])  # 29 clamped below the last bin
    assert torch.equal(ops.dist2bbox(dist[:1], points[:1]), boxes[:1])


