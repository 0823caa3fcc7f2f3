"""End to end on the CPU: the assembled detector memorises a few drawn boxes, and predict() finds them again.

This is the test that catches what unit tests cannot: a head layout that disagrees with the decoder, a loss that
trains the wrong cells, a decode that is off by half a cell.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yoloswap import ops
from yoloswap.models.cspdarknet import CSPDarknet
from yoloswap.models.detector import Detector
from yoloswap.models.head import YOLOv5Head
from yoloswap.models.neck import YOLOv5PAFPN
from yoloswap.models.yolov8_head import YOLOv8Head

pytestmark = pytest.mark.slow  # end-to-end: in the default run, deselect with -m 'not slow'

SIZE = 128
COLOURS = {0: (0.9, 0.1, 0.1), 1: (0.1, 0.2, 0.9)}  # class 0 red, class 1 blue
# (image, class, x1, y1, x2, y2) in pixels, on a grey background
RECTANGLES = [
    (0, 0, 20, 30, 60, 70),
    (0, 1, 70, 60, 120, 100),
    (1, 1, 30, 20, 100, 90),
    (2, 0, 10, 70, 50, 120),
    (3, 1, 60, 10, 110, 50),
    (3, 0, 20, 50, 70, 110),
]
STEPS = 120


def draw_images() -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 3, 128, 128) images in [0, 1] and (M, 6) targets [image, cls, cx, cy, w, h] in pixels."""
    images = torch.full((4, 3, SIZE, SIZE), 0.5)
    targets = []
    for image, cls, x1, y1, x2, y2 in RECTANGLES:
        images[image, :, y1:y2, x1:x2] = torch.tensor(COLOURS[cls]).view(3, 1, 1)
        targets.append([image, cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
    return images, torch.tensor(targets)


def build_model(head_cls=YOLOv5Head) -> Detector:
    backbone = CSPDarknet(deepen=0.33, widen=0.25)
    channels = [f.shape[1] for f in backbone(torch.zeros(1, 3, 64, 64))]
    neck = YOLOv5PAFPN(channels, channels, depth=1)
    head = head_cls(neck.out_channels, num_classes=2, strides=(8, 16, 32))
    return Detector(backbone, neck, head, mean=(0, 0, 0), std=(1, 1, 1))


@torch.no_grad()
def recompute_norm_statistics(model: Detector, images: torch.Tensor) -> None:
    """BatchNorm's running averages (momentum 0.03) trail weights that changed every step; real training runs
    long enough for them to settle, 120 steps do not. Recompute them exactly on the training batch."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch gives exactly its statistics
    model.train()
    model(images)


@pytest.mark.parametrize("head_cls", [YOLOv5Head, YOLOv8Head], ids=["yolov5", "yolov8"])
def test_detector_overfits_drawn_rectangles_and_predict_finds_them(head_cls):
    torch.manual_seed(0)
    images, targets = draw_images()
    model = build_model(head_cls).train()
    criterion = model.head.make_loss(SIZE)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / STEPS)

    losses = []
    for _ in range(STEPS):
        loss, _ = criterion(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, f"loss went from {losses[0]:.4f} to {losses[-1]:.4f}"

    recompute_norm_statistics(model, images)
    model.eval()
    with torch.no_grad():
        predictions = model.predict(images)
    for image, cls, x1, y1, x2, y2 in RECTANGLES:
        found = predictions[image]  # (K, 6) [x1, y1, x2, y2, score, cls]
        same_class = found[found[:, 5] == cls]
        iou = ops.box_iou(torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32), same_class[:, :4])
        assert iou.numel() and iou.max() > 0.5, f"image {image}: no class-{cls} box near {(x1, y1, x2, y2)}"
