"""The YOLOv5 loss: anchor-ratio target assignment plus CIoU box, objectness and class BCE terms.

Assignment (``build_targets``) is a plain function apart from the loss, so it can be inspected and tested alone.
Targets arrive in input-image pixels; each level divides them by its stride to get grid units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from yoloswap.ops import bbox_ciou

# A centre this close (in cells) to a cell border also trains the neighbour cell across that border.
NEIGHBOUR_OFFSET = 0.5
# Offsets (in cells, times NEIGHBOUR_OFFSET) of the own cell and its left, top, right and bottom neighbours.
_CELL_OFFSETS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32) * NEIGHBOUR_OFFSET


@dataclass
class LevelTargets:
    """Targets matched to one level: one row per (target, anchor, cell) pair."""

    image: torch.Tensor  # (T,) batch index
    anchor: torch.Tensor  # (T,) anchor index on this level
    gj: torch.Tensor  # (T,) cell row
    gi: torch.Tensor  # (T,) cell column
    box: torch.Tensor  # (T, 4) x, y relative to the cell's corner, w, h; grid units
    anchor_wh: torch.Tensor  # (T, 2) matched anchor size, grid units
    cls: torch.Tensor  # (T,) class index


def build_targets(
    outputs: Sequence[torch.Tensor],
    targets: torch.Tensor,
    anchors: torch.Tensor,
    strides: Sequence[float],
    anchor_t: float = 4.0,
) -> list[LevelTargets]:
    """Match targets (M, 6) [image, cls, cx, cy, w, h] in pixels to anchors and cells of every level.

    A target pairs with an anchor when neither its width nor its height differs from the anchor's by more than a
    factor ``anchor_t``. Each pair trains its own cell and the two neighbour cells nearest to the centre (when the
    centre is in the near half of a cell that is not on the border), so up to 3 cells per pair.
    """
    device = targets.device
    num_anchors = anchors.shape[1]
    num_targets = targets.shape[0]
    anchor_ids = torch.arange(num_anchors, device=device, dtype=targets.dtype).view(num_anchors, 1)
    anchor_ids = anchor_ids.repeat(1, num_targets)  # (na, M)
    # (na, M, 7): each target once per anchor, anchor index appended.
    per_anchor = torch.cat((targets.repeat(num_anchors, 1, 1), anchor_ids[..., None]), dim=2)
    offsets_table = _CELL_OFFSETS.to(device=device, dtype=targets.dtype)  # (5, 2)
    g = NEIGHBOUR_OFFSET
    levels = []
    for level, raw in enumerate(outputs):
        h, w = raw.shape[2:4]
        stride = float(strides[level])
        level_anchors = anchors[level].to(device=device, dtype=targets.dtype) / stride  # (na, 2) grid units
        t = per_anchor.clone()
        t[..., 2:6] /= stride  # pixels -> grid units
        ratio = t[..., 4:6] / level_anchors[:, None]  # (na, M, 2)
        matched = torch.max(ratio, 1 / ratio).max(dim=2).values < anchor_t  # (na, M)
        t = t[matched]  # (K, 7)
        gxy = t[:, 2:4]  # (K, 2) centre, grid units from top-left
        gxy_inv = torch.tensor([w, h], device=device, dtype=t.dtype) - gxy  # from bottom-right
        left, top = ((gxy % 1 < g) & (gxy > 1.0)).T
        right, bottom = ((gxy_inv % 1 < g) & (gxy_inv > 1.0)).T
        use = torch.stack((torch.ones_like(left), left, top, right, bottom))  # (5, K)
        t = t.repeat(5, 1, 1)[use]  # (T, 7)
        offsets = (torch.zeros_like(gxy)[None] + offsets_table[:, None])[use]  # (T, 2)
        image, cls = t[:, 0].long(), t[:, 1].long()
        gxy, gwh = t[:, 2:4], t[:, 4:6]
        gij = (gxy - offsets).long()
        gi = gij[:, 0].clamp(0, w - 1)
        gj = gij[:, 1].clamp(0, h - 1)
        anchor = t[:, 6].long()
        levels.append(
            LevelTargets(
                image=image,
                anchor=anchor,
                gj=gj,
                gi=gi,
                box=torch.cat((gxy - gij, gwh), dim=1),
                anchor_wh=level_anchors[anchor],
                cls=cls,
            )
        )
    return levels


class YOLOv5Loss:
    """Callable: ``loss, items = criterion(outputs, targets)``; ``loss`` is ready for ``backward()``.

    ``loss`` is (box + obj + cls) x batch size, as YOLOv5 does (so the effective lr does not shrink with the batch
    mean); ``items`` is the detached [box, obj, cls] for logging. Gains are rescaled for the number of classes,
    levels and the image size the same way the reference rescales its hyper-parameters.
    """

    names = ("box", "obj", "cls")

    def __init__(
        self,
        num_classes: int,
        anchors: torch.Tensor,
        strides: Sequence[int],
        img_size: int = 640,
        box: float = 0.05,
        obj: float = 1.0,
        cls: float = 0.5,
        anchor_t: float = 4.0,
        balance: Sequence[float] = (4.0, 1.0, 0.4),
    ) -> None:
        num_levels = anchors.shape[0]
        if not len(strides) == len(balance) == num_levels:
            raise ValueError(
                f"YOLOv5Loss got {num_levels} anchor levels, {len(strides)} strides and {len(balance)} balance "
                "weights; they must agree"
            )
        self.num_classes = int(num_classes)
        # Kept by reference (detached view), so anchors changed in place on the head are seen here too.
        self.anchors = anchors.detach()
        self.strides = tuple(float(s) for s in strides)
        self.anchor_t = float(anchor_t)
        self.balance = tuple(float(b) for b in balance)
        self.box_gain = box * 3 / num_levels
        self.cls_gain = cls * self.num_classes / 80 * 3 / num_levels
        self.obj_gain = obj * (img_size / 640) ** 2 * 3 / num_levels

    def __call__(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Loss maths in float32 even under autocast: BCE and CIoU lose too much in half precision.
        outputs = [o.float() for o in outputs]
        device = outputs[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        matched = build_targets(outputs, targets, self.anchors.to(device), self.strides, self.anchor_t)
        loss_box = torch.zeros((), device=device)
        loss_obj = torch.zeros((), device=device)
        loss_cls = torch.zeros((), device=device)
        for raw, m, weight in zip(outputs, matched, self.balance):
            obj_target = torch.zeros(raw.shape[:4], device=device)  # (N, na, H, W)
            if len(m.image):
                pred = raw[m.image, m.anchor, m.gj, m.gi]  # (T, 5+nc)
                pxy = pred[:, :2].sigmoid() * 2 - 0.5
                pwh = (pred[:, 2:4].sigmoid() * 2) ** 2 * m.anchor_wh
                ciou = bbox_ciou(torch.cat((pxy, pwh), dim=1), m.box)  # (T,)
                loss_box = loss_box + (1.0 - ciou).mean()
                # Objectness learns to predict how well the box fits, not just "object here".
                obj_target[m.image, m.anchor, m.gj, m.gi] = ciou.detach().clamp(min=0)
                if self.num_classes > 1:  # a single class is all objectness
                    cls_target = F.one_hot(m.cls, self.num_classes).float()  # (T, nc)
                    loss_cls = loss_cls + F.binary_cross_entropy_with_logits(pred[:, 5:], cls_target)
            loss_obj = loss_obj + weight * F.binary_cross_entropy_with_logits(raw[..., 4], obj_target)
        loss_box = loss_box * self.box_gain
        loss_obj = loss_obj * self.obj_gain
        loss_cls = loss_cls * self.cls_gain
        batch_size = outputs[0].shape[0]
        total = (loss_box + loss_obj + loss_cls) * batch_size
        return total, torch.stack((loss_box, loss_obj, loss_cls)).detach()
