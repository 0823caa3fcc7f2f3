"""The YOLOv8 (anchor-free) loss: task-aligned assignment, BCE classes, CIoU boxes and Distribution Focal Loss.

The head predicts, per point, four distances (left, top, right, bottom, in cells of its level) as distributions
over ``reg_max`` bins; the box is the distributions' expectations. DFL teaches each distribution to put its mass on
the two bins around the true distance, in proportion to how close each is. All three terms are normalised by the
sum of the soft class targets, so a batch with few boxes is not weighted less.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from yoloswap.losses.assigner import ALPHA, BETA, TOPK, task_aligned_assign
from yoloswap.ops import bbox2dist, bbox_ciou, dist2bbox, make_anchor_points, xywh2xyxy, xyxy2xywh

REG_MAX = 16


def split_outputs(outputs: Sequence[torch.Tensor], num_classes: int, reg_max: int = REG_MAX
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level (N, 4*reg_max + nc, H, W) maps -> (N, A, 4, reg_max) distance logits and (N, A, nc) class logits,
    points ordered level by level, row-major."""
    n = outputs[0].shape[0]
    flat = torch.cat([o.reshape(n, o.shape[1], -1) for o in outputs], dim=2).transpose(1, 2)  # (N, A, 4*reg+nc)
    dist, cls = flat.split((4 * reg_max, num_classes), dim=2)
    return dist.reshape(n, -1, 4, reg_max), cls


def expected_distance(dist_logits: torch.Tensor) -> torch.Tensor:
    """(..., 4, reg_max) logits -> (..., 4) expectation of each side's distribution over bins 0..reg_max-1."""
    bins = torch.arange(dist_logits.shape[-1], device=dist_logits.device, dtype=dist_logits.dtype)
    return dist_logits.softmax(dim=-1) @ bins


def dfl_loss(dist_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution Focal Loss: (K, 4, reg_max) logits, (K, 4) target distances in bins -> (K,) mean over sides.

    A target t between bins l = floor(t) and l + 1 is cross-entropy to l weighted (l + 1 - t) plus cross-entropy
    to l + 1 weighted (t - l).
    """
    left = target.long()  # (K, 4)
    right = left + 1
    w_left = right.to(target.dtype) - target
    w_right = 1 - w_left
    logits = dist_logits.reshape(-1, dist_logits.shape[-1])
    ce_left = F.cross_entropy(logits, left.reshape(-1), reduction="none").view_as(target)
    ce_right = F.cross_entropy(logits, right.reshape(-1), reduction="none").view_as(target)
    return (ce_left * w_left + ce_right * w_right).mean(dim=-1)


def pad_targets(targets: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(M, 6) [image, cls, cx, cy, w, h] -> per image (B, Mmax) labels, (B, Mmax, 4) xyxy boxes, (B, Mmax) mask."""
    device = targets.device
    image = targets[:, 0].long()
    counts = torch.bincount(image, minlength=batch_size) if len(targets) else torch.zeros(batch_size, dtype=torch.long)
    most = int(counts.max()) if len(targets) else 0
    labels = torch.zeros(batch_size, most, dtype=torch.long, device=device)
    boxes = torch.zeros(batch_size, most, 4, device=device)
    mask = torch.zeros(batch_size, most, dtype=torch.bool, device=device)
    if most:
        order = torch.argsort(image, stable=True)
        image, sorted_targets = image[order], targets[order]
        starts = torch.cumsum(counts.to(device), 0) - counts.to(device)  # first row of each image
        slot = torch.arange(len(image), device=device) - starts[image]
        labels[image, slot] = sorted_targets[:, 1].long()
        boxes[image, slot] = xywh2xyxy(sorted_targets[:, 2:6])
        mask[image, slot] = True
    return labels, boxes, mask


class YOLOv8Loss:
    """Callable: ``loss, items = criterion(outputs, targets)``, targets (M, 6) [image, cls, cx, cy, w, h] pixels.

    ``loss`` is (box + cls + dfl) x batch size, as Ultralytics does; ``items`` the detached gained [box, cls, dfl].
    """

    names = ("box", "cls", "dfl")

    def __init__(
        self,
        num_classes: int,
        strides: Sequence[int],
        reg_max: int = REG_MAX,
        box: float = 7.5,
        cls: float = 0.5,
        dfl: float = 1.5,
        topk: int = TOPK,
        alpha: float = ALPHA,
        beta: float = BETA,
    ) -> None:
        self.num_classes = int(num_classes)
        self.strides = tuple(int(s) for s in strides)
        self.reg_max = int(reg_max)
        self.gains = (float(box), float(cls), float(dfl))
        self.topk, self.alpha, self.beta = int(topk), float(alpha), float(beta)

    def __call__(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [o.float() for o in outputs]  # loss maths in float32 even under autocast
        device = outputs[0].device
        batch_size = outputs[0].shape[0]
        dist_logits, cls_logits = split_outputs(outputs, self.num_classes, self.reg_max)  # (B,A,4,R), (B,A,nc)
        points, point_strides = make_anchor_points([o.shape[2:] for o in outputs], self.strides, device)
        pred_boxes = dist2bbox(expected_distance(dist_logits), points)  # (B, A, 4) xyxy, grid units

        labels, gt_boxes, gt_mask = pad_targets(targets.to(device=device, dtype=torch.float32), batch_size)
        assigned = task_aligned_assign(
            cls_logits.detach().sigmoid(), pred_boxes.detach() * point_strides, points * point_strides,
            labels, gt_boxes, gt_mask, topk=self.topk, alpha=self.alpha, beta=self.beta,
        )  # fmt: skip
        score_sum = assigned.scores.sum().clamp(min=1)
        loss_cls = F.binary_cross_entropy_with_logits(cls_logits, assigned.scores, reduction="sum") / score_sum
        loss_box = torch.zeros((), device=device)
        loss_dfl = torch.zeros((), device=device)
        fg = assigned.foreground
        if fg.any():
            weight = assigned.scores.sum(dim=-1)[fg]  # (K,)
            target_boxes = (assigned.boxes / point_strides)[fg]  # (K, 4) grid units
            ciou = bbox_ciou(xyxy2xywh(pred_boxes[fg]), xyxy2xywh(target_boxes))
            loss_box = ((1.0 - ciou) * weight).sum() / score_sum
            target_dist = bbox2dist(points.expand_as(pred_boxes[..., :2])[fg], target_boxes, self.reg_max - 1)
            loss_dfl = (dfl_loss(dist_logits[fg], target_dist) * weight).sum() / score_sum
        items = torch.stack((loss_box * self.gains[0], loss_cls * self.gains[1], loss_dfl * self.gains[2]))
        return items.sum() * batch_size, items.detach()
