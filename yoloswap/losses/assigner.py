"""Task-aligned assignment (TOOD), as the anchor-free YOLOv8 head trains with it.

Which points learn which box is decided by how well the model already does there: a point's alignment with a box
is ``class score ** alpha * IoU ** beta``, where the score is the point's predicted probability of the box's
class and the IoU is between the point's predicted box and the box. Each box takes the ``topk`` best-aligned
points among those whose centre lies inside it; a point claimed by several boxes keeps the one its prediction
overlaps most. Class targets are soft: the alignment, rescaled so each box's best point gets that point's IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from yoloswap.ops import bbox_ciou, xyxy2xywh

TOPK = 10
ALPHA = 0.5
BETA = 6.0


@dataclass
class Assignment:
    """Per image and point: what it learns. Background points have ``foreground`` False and zero scores."""

    foreground: torch.Tensor  # (B, A) bool
    gt_index: torch.Tensor  # (B, A) long, index of the assigned box (0 for background)
    labels: torch.Tensor  # (B, A) long, class of the assigned box
    boxes: torch.Tensor  # (B, A, 4) x1 y1 x2 y2 of the assigned box, same units as the input boxes
    scores: torch.Tensor  # (B, A, nc) soft class targets


@torch.no_grad()
def task_aligned_assign(
    pred_scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    points: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_mask: torch.Tensor,
    topk: int = TOPK,
    alpha: float = ALPHA,
    beta: float = BETA,
    eps: float = 1e-9,
) -> Assignment:
    """Assign boxes to points.

    Args:
        pred_scores: (B, A, nc) predicted class probabilities (after the sigmoid).
        pred_boxes: (B, A, 4) predicted x1 y1 x2 y2, in the same units as ``points`` and ``gt_boxes``.
        points: (A, 2) point positions (x, y).
        gt_labels: (B, M) long class of each box (any value where ``gt_mask`` is False).
        gt_boxes: (B, M, 4) x1 y1 x2 y2 boxes, zero-padded to the most boxes in any image.
        gt_mask: (B, M) bool, True for real boxes.
    """
    batch, num_points, num_classes = pred_scores.shape
    num_boxes = gt_boxes.shape[1]
    device = pred_scores.device
    if num_boxes == 0:
        return Assignment(
            foreground=torch.zeros(batch, num_points, dtype=torch.bool, device=device),
            gt_index=torch.zeros(batch, num_points, dtype=torch.long, device=device),
            labels=torch.zeros(batch, num_points, dtype=torch.long, device=device),
            boxes=torch.zeros(batch, num_points, 4, device=device, dtype=pred_boxes.dtype),
            scores=torch.zeros_like(pred_scores),
        )
    labels = gt_labels.long().clamp(0, num_classes - 1)
    # Candidates: real boxes and points strictly inside them.
    corners = gt_boxes[:, :, None, :]  # (B, M, 1, 4)
    margins = torch.cat((points - corners[..., :2], corners[..., 2:] - points), dim=-1)  # (B, M, A, 4)
    candidate = (margins.amin(dim=-1) > eps) & gt_mask[:, :, None]  # (B, M, A)

    # Alignment of each candidate point with each box; zero elsewhere.
    box_scores = pred_scores.gather(2, labels[:, None, :].expand(batch, num_points, num_boxes))  # (B, A, M)
    box_scores = box_scores.permute(0, 2, 1)  # (B, M, A)
    overlaps = torch.zeros(batch, num_boxes, num_points, device=device, dtype=pred_boxes.dtype)
    gt_pairs = gt_boxes[:, :, None, :].expand(batch, num_boxes, num_points, 4)[candidate]  # (K, 4)
    pred_pairs = pred_boxes[:, None, :, :].expand(batch, num_boxes, num_points, 4)[candidate]  # (K, 4)
    overlaps[candidate] = bbox_ciou(xyxy2xywh(gt_pairs), xyxy2xywh(pred_pairs)).clamp(min=0).to(overlaps.dtype)
    alignment = box_scores.pow(alpha) * overlaps.pow(beta) * candidate  # (B, M, A)

    # Each box keeps its top-k best-aligned candidates.
    top = alignment.topk(min(topk, num_points), dim=-1).indices  # (B, M, k)
    in_top = torch.zeros_like(candidate).scatter_(-1, top, True)
    positive = in_top & candidate  # (B, M, A)

    # One box per point: a point claimed twice keeps the box its prediction overlaps most.
    claimed = positive.sum(dim=1)  # (B, A)
    if (claimed > 1).any():
        best = F.one_hot(overlaps.argmax(dim=1), num_boxes).permute(0, 2, 1).bool()  # (B, M, A)
        positive = torch.where((claimed > 1)[:, None, :], best, positive)
    foreground = positive.any(dim=1)  # (B, A)
    gt_index = positive.to(torch.uint8).argmax(dim=1)  # (B, A)

    target_labels = labels.gather(1, gt_index)  # (B, A)
    target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(batch, num_points, 4))  # (B, A, 4)
    scores = F.one_hot(target_labels, num_classes).to(pred_scores.dtype) * foreground[..., None]

    # Soft targets: alignment rescaled per box so its best point scores that box's best IoU.
    alignment = alignment * positive
    best_alignment = alignment.amax(dim=-1, keepdim=True)  # (B, M, 1)
    best_overlap = (overlaps * positive).amax(dim=-1, keepdim=True)  # (B, M, 1)
    strength = (alignment * best_overlap / (best_alignment + eps)).amax(dim=1)  # (B, A)
    return Assignment(foreground, gt_index, target_labels, target_boxes, scores * strength[..., None])
