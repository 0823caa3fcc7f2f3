"""Task-aligned assignment on hand-made cases: which points get which box, top-k, one box per point, soft scores."""

from __future__ import annotations

import pytest
import torch

from yoloswap.losses.assigner import task_aligned_assign
from yoloswap.ops import bbox_ciou, xyxy2xywh


def grid_points(w=6, h=6):
    """(h*w, 2) cell centres of a stride-1 grid, row-major: point index = y * w + x."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack((xs, ys), dim=-1).view(-1, 2) + 0.5


def assign(pred_boxes, gt_boxes, gt_labels, scores=None, gt_mask=None, num_classes=2, **kw):
    points = grid_points()
    a = len(points)
    if scores is None:
        scores = torch.full((1, a, num_classes), 0.5)
    gt_boxes = torch.tensor([gt_boxes], dtype=torch.float32)
    gt_labels = torch.tensor([gt_labels])
    gt_mask = torch.ones(gt_labels.shape, dtype=torch.bool) if gt_mask is None else torch.tensor([gt_mask])
    return task_aligned_assign(scores, pred_boxes[None], points, gt_labels, gt_boxes, gt_mask, **kw)


def ciou(a, b):
    return bbox_ciou(xyxy2xywh(torch.tensor(a)), xyxy2xywh(torch.tensor(b))).clamp(min=0).item()


BOX = [1.0, 1.0, 3.0, 3.0]  # contains the centres of cells (1,1), (2,1), (1,2), (2,2): points 7, 8, 13, 14


def test_only_points_inside_the_box_are_candidates():
    pred = torch.tensor(BOX).repeat(36, 1)  # every point predicts the box perfectly
    a = assign(pred, [BOX], [1])
    assert a.foreground[0].nonzero().view(-1).tolist() == [7, 8, 13, 14]
    assert a.labels[0, [7, 8, 13, 14]].tolist() == [1, 1, 1, 1]
    assert torch.equal(a.boxes[0, 7], torch.tensor(BOX))
    # Every positive is perfectly aligned, so every one gets the full score for its class, nothing elsewhere.
    assert a.scores[0, [7, 8, 13, 14], 1].tolist() == pytest.approx([1.0] * 4)
    assert a.scores[0, :, 0].abs().sum() == 0 and a.scores[0].sum().item() == pytest.approx(4.0)


def test_topk_keeps_the_best_aligned_points_and_scores_them_softly():
    pred = torch.tensor(BOX).repeat(36, 1)
    pred[8] = torch.tensor([1.2, 1.0, 3.2, 3.0])  # slightly off
    pred[13] = torch.tensor([1.6, 1.0, 3.6, 3.0])  # further off
    pred[14] = torch.tensor([2.0, 1.0, 4.0, 3.0])  # half off
    a = assign(pred, [BOX], [0], topk=2)
    assert a.foreground[0].nonzero().view(-1).tolist() == [7, 8]  # the two best of the four candidates
    # Soft targets: the best point gets its IoU (1.0); the next its alignment relative to the best
    # (equal class scores, beta 6): ciou ** 6.
    assert a.scores[0, 7, 0].item() == pytest.approx(1.0)
    assert a.scores[0, 8, 0].item() == pytest.approx(ciou([1.2, 1.0, 3.2, 3.0], BOX) ** 6, rel=1e-4)


def test_class_score_breaks_ties_between_equally_good_boxes():
    pred = torch.tensor(BOX).repeat(36, 1)
    scores = torch.full((1, 36, 2), 0.5)
    scores[0, 13, 1] = 0.9  # point 13 is more sure of class 1
    scores[0, 14, 0] = 0.99  # point 14 is sure of the wrong class: does not help
    a = assign(pred, [BOX], [1], scores=scores, topk=1)
    assert a.foreground[0].nonzero().view(-1).tolist() == [13]


def test_one_box_per_point_goes_to_the_box_its_prediction_overlaps_most():
    big = [0.0, 0.0, 4.0, 4.0]  # contains points 0-3, 6-9, 12-15, 18-21
    pred = torch.tensor(big).repeat(36, 1)
    pred[14] = torch.tensor(BOX)  # point 14 (inside both boxes) predicts the small box exactly
    a = assign(pred, [big, BOX], [0, 1], topk=16)
    assert a.gt_index[0, 14].item() == 1 and a.labels[0, 14].item() == 1
    assert a.gt_index[0, 7].item() == 0 and a.labels[0, 7].item() == 0  # predicts the big box: stays with it
    assert a.foreground[0].sum().item() == 16  # every point inside the big box, each counted once
    assert (a.scores[0].sum(dim=-1) > 0).sum().item() == 16


def test_padding_boxes_and_empty_images_assign_nothing():
    pred = torch.tensor(BOX).repeat(36, 1)
    a = assign(pred, [BOX, [0.0, 0.0, 0.0, 0.0]], [0, 0], gt_mask=[False, False])
    assert not a.foreground.any() and a.scores.sum() == 0
    empty = task_aligned_assign(torch.rand(2, 36, 3), pred[None].repeat(2, 1, 1), grid_points(),
                                torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, 4),
                                torch.zeros(2, 0, dtype=torch.bool))
    assert empty.scores.shape == (2, 36, 3) and not empty.foreground.any()


def test_boxes_of_different_images_do_not_mix():
    gt = torch.tensor([[BOX], [[3.0, 3.0, 5.0, 5.0]]])  # image 1's box covers points 21, 22, 27, 28
    pred = gt.repeat(1, 36, 1)  # each image's points predict that image's box
    a = task_aligned_assign(torch.full((2, 36, 2), 0.5), pred, grid_points(), torch.tensor([[0], [1]]), gt,
                            torch.ones(2, 1, dtype=torch.bool))
    assert a.foreground[0].nonzero().view(-1).tolist() == [7, 8, 13, 14]
    assert a.foreground[1].nonzero().view(-1).tolist() == [21, 22, 27, 28]
    assert a.labels[1, 21].item() == 1
