"""Box operations shared by the heads: format conversion, IoU, the YOLOv5 decode formula, anchor points and
distance boxes for the anchor-free head, and NMS post-processing of the head-independent detection rows.

NMS and pairwise IoU come from ``torchvision.ops``; what is detection-specific (decode formulas, CIoU as the losses
use it) is written here. Every head decodes to the same rows (see :func:`postprocess`), so NMS is head-blind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchvision

# Thresholds used by the reference for mAP evaluation and for user-facing predictions.
EVAL_CONF = 0.001
EVAL_IOU = 0.65
PREDICT_CONF = 0.25
PREDICT_IOU = 0.45
MAX_DET = 300
# At most this many candidates per image go into NMS (the highest scores), bounding its cost on untrained models.
MAX_NMS = 30000


def xywh2xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre x, centre y, width, height -> (..., 4) x1, y1, x2, y2."""
    xy, half = boxes[..., :2], boxes[..., 2:4] / 2
    return torch.cat((xy - half, xy + half), dim=-1)


def xyxy2xywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) x1, y1, x2, y2 -> (..., 4) centre x, centre y, width, height."""
    p1, p2 = boxes[..., :2], boxes[..., 2:4]
    return torch.cat(((p1 + p2) / 2, p2 - p1), dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    return torchvision.ops.box_iou(a, b)


def bbox_ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Elementwise Complete-IoU of xywh boxes, (..., 4) x (..., 4) -> (...).

    CIoU = IoU - centre distance^2 / enclosing diagonal^2 - alpha * v, where v measures the aspect-ratio mismatch
    and alpha is treated as a constant (no gradient), as in the CIoU paper and YOLOv5.
    """
    b1 = xywh2xyxy(box1)
    b2 = xywh2xyxy(box2)
    b1x1, b1y1, b1x2, b1y2 = b1.unbind(-1)
    b2x1, b2y1, b2x2, b2y2 = b2.unbind(-1)
    inter = (torch.minimum(b1x2, b2x2) - torch.maximum(b1x1, b2x1)).clamp(min=0) * (
        torch.minimum(b1y2, b2y2) - torch.maximum(b1y1, b2y1)
    ).clamp(min=0)
    w1, h1 = b1x2 - b1x1, b1y2 - b1y1 + eps
    w2, h2 = b2x2 - b2x1, b2y2 - b2y1 + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    enclose_w = torch.maximum(b1x2, b2x2) - torch.minimum(b1x1, b2x1)
    enclose_h = torch.maximum(b1y2, b2y2) - torch.minimum(b1y1, b2y1)
    diagonal2 = enclose_w**2 + enclose_h**2 + eps
    centre2 = ((b2x1 + b2x2 - b1x1 - b1x2) ** 2 + (b2y1 + b2y2 - b1y1 - b1y2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (centre2 / diagonal2 + v * alpha)


def _grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(H, W, 2) cell indices as (x, y)."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=-1)


def decode(
    outputs: Sequence[torch.Tensor], anchors: torch.Tensor, strides: Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Raw YOLOv5 head outputs -> (N, P, 5+nc) float32 rows [cx, cy, w, h (pixels), obj, cls...] (sigmoided).

    xy = (2*sigmoid - 0.5 + cell) * stride lets a centre reach half a cell beyond its own cell (the loss assigns
    neighbour cells too); wh = (2*sigmoid)^2 * anchor bounds sizes to (0, 4) anchors, which keeps training stable.
    """
    decoded = []
    for level, raw in enumerate(outputs):
        n, na, h, w, no = raw.shape
        stride = float(strides[level])
        y = raw.float().sigmoid()  # (N, na, H, W, 5+nc)
        grid = _grid(h, w, raw.device)  # (H, W, 2)
        anchor_wh = anchors[level].to(device=raw.device, dtype=torch.float32).view(1, na, 1, 1, 2)
        xy = (y[..., :2] * 2 - 0.5 + grid) * stride
        wh = (y[..., 2:4] * 2) ** 2 * anchor_wh
        y = torch.cat((xy, wh, y[..., 4:]), dim=-1)
        decoded.append(y.view(n, na * h * w, no))
    return torch.cat(decoded, dim=1)


def make_anchor_points(shapes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres of every level, for the anchor-free head: ``(A, 2)`` points (x, y) in grid units of their own
    level and ``(A, 1)`` strides, levels concatenated in order, each level row-major (y, then x).

    ``shapes`` are the levels' (H, W). Multiplying a point by its stride gives input pixels.
    """
    points, point_strides = [], []
    for (h, w), stride in zip(shapes, strides):
        grid = _grid(h, w, device) + 0.5  # (H, W, 2) centres
        points.append(grid.view(-1, 2))
        point_strides.append(torch.full((h * w, 1), float(stride), device=device))
    return torch.cat(points), torch.cat(point_strides)


def dist2bbox(distances: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(..., 4) distances (left, top, right, bottom) from (..., 2) points -> (..., 4) x1, y1, x2, y2."""
    lt, rb = distances.chunk(2, dim=-1)
    return torch.cat((points - lt, points + rb), dim=-1)


def bbox2dist(points: torch.Tensor, boxes: torch.Tensor, max_dist: float) -> torch.Tensor:
    """Inverse of :func:`dist2bbox`, clamped to [0, max_dist - 0.01] so both DFL bins of a target exist."""
    x1y1, x2y2 = boxes.chunk(2, dim=-1)
    return torch.cat((points - x1y1, x2y2 - points), dim=-1).clamp(0, max_dist - 0.01)


def postprocess(
    detections: torch.Tensor,
    conf_thres: float,
    iou_thres: float,
    max_det: int = MAX_DET,
    multi_label: bool = True,
    max_wh: float = 7680,
) -> list[torch.Tensor]:
    """Detection rows (N, P, 4 + nc) [x1, y1, x2, y2 (pixels), class scores in [0, 1]...], as every head's
    ``decode`` (and ``Detector.infer``) returns them -> per image a (K, 6) tensor [x1, y1, x2, y2, score, cls],
    best scores first.

    ``multi_label`` keeps every class above ``conf_thres`` for a box (what mAP evaluation wants); otherwise only
    its best class. NMS runs per class. Boxes wider or taller than ``max_wh`` pixels are dropped as degenerate (a
    diverged model can emit them).
    """
    if not 0 <= conf_thres <= 1 or not 0 <= iou_thres <= 1:
        raise ValueError(f"conf_thres and iou_thres must be in [0, 1], got {conf_thres} and {iou_thres}")
    results = []
    for rows in detections:  # (P, 4+nc)
        rows = rows[rows[:, 4:].amax(dim=1) > conf_thres]
        rows = rows[((rows[:, 2:4] - rows[:, :2]) < max_wh).all(dim=1)]
        boxes, scores = rows[:, :4], rows[:, 4:]  # (P', 4), (P', nc)
        if multi_label:
            box_idx, cls_idx = (scores > conf_thres).nonzero(as_tuple=True)
            dets = torch.cat(
                (boxes[box_idx], scores[box_idx, cls_idx, None], cls_idx[:, None].to(boxes.dtype)), dim=1
            )
        else:
            best, cls_idx = scores.max(dim=1, keepdim=True)  # (P', 1) each
            dets = torch.cat((boxes, best, cls_idx.to(boxes.dtype)), dim=1)[best.view(-1) > conf_thres]
        if len(dets) > MAX_NMS:
            dets = dets[dets[:, 4].argsort(descending=True)[:MAX_NMS]]
        keep = torchvision.ops.batched_nms(dets[:, :4], dets[:, 4], dets[:, 5].long(), iou_thres)
        results.append(dets[keep[:max_det]])  # (K, 6)
    return results
