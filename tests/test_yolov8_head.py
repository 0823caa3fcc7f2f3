"""The anchor-free YOLOv8 head: Ultralytics' sizes, its priors, decode, DFL and the loss on hand-made cases."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from yoloswap import ops
from yoloswap.losses.yolov8 import YOLOv8Loss, dfl_loss, pad_targets
from yoloswap.assembly import build_detector, describe_detector
from yoloswap.models.yolov8_head import YOLOv8Head
from yoloswap.backbones.resolve import resolve_backbone

STRIDES = (8, 16, 32)


@pytest.mark.parametrize(
    ("backbone", "params", "gflops"),
    [("yolov5n", 2_654_816, 7.72), ("yolov5s", 9_153_152, 24.00), ("yolov5m", 25_111_456, 64.21)],
)
def test_sizes_match_ultralytics_yolov5u(backbone, params, gflops):
    """Ultralytics 8.4 builds yolov5n/s/m.yaml (80 classes) with exactly these sizes (FlopCounterMode, 640 px)."""
    preset = dataclasses.replace(resolve_backbone(backbone), head="yolov8")
    with torch.device("meta"):
        model, plan = build_detector(preset, 80, (640, 640))
        summary = describe_detector(model, plan, (640, 640))
    assert summary["params"] == params
    assert round(summary["gflops"], 2) == gflops
    assert summary["head"] == "yolov8" and plan.head == "yolov8"


def test_info_command_reports_the_yolov8_head(cli):
    code, out, err = cli("info", "--backbone", "yolov5n", "--head", "yolov8", "--num-classes", "80", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["params"] == 2_654_816 and summary["head"] == "yolov8"
    code, _, err = cli("info", "--backbone", "yolov5n", "--head", "yolov9")
    assert code != 0 and "'yolov9' is not one of yolov5, yolov8; did you mean 'yolov8'?" in err


@pytest.mark.parametrize(("channels", "nc", "box_width", "cls_width"),
                         [((64, 128, 256), 80, 64, 80), ((256, 512, 1024), 3, 64, 256), ((512, 8, 8), 200, 128, 512)])
def test_branch_widths_follow_the_stride8_width(channels, nc, box_width, cls_width):
    with torch.device("meta"):
        head = YOLOv8Head(channels, nc, STRIDES)
    for box, cls, c in zip(head.box_branches, head.cls_branches, channels):
        assert box[0].conv.in_channels == c and box[0].conv.out_channels == box_width
        assert box[2].out_channels == 64
        assert cls[0].conv.out_channels == cls_width and cls[2].out_channels == nc


def test_output_layout_and_bias_priors():
    head = YOLOv8Head((16, 32, 64), num_classes=3, strides=STRIDES)
    outputs = head([torch.zeros(2, c, 64 // s, 96 // s) for c, s in zip((16, 32, 64), STRIDES)])
    assert [tuple(o.shape) for o in outputs] == [(2, 67, 8, 12), (2, 67, 4, 6), (2, 67, 2, 3)]
    for box, cls, stride in zip(head.box_branches, head.cls_branches, STRIDES):
        assert torch.all(box[-1].bias == 1.0)
        assert torch.allclose(cls[-1].bias, torch.full((3,), math.log(5 / 3 / (640 / stride) ** 2)))
    # The DFL bins are counted as parameters (as Ultralytics does) but never trained.
    assert not head.dfl_bins.requires_grad and head.dfl_bins.tolist() == list(range(16))


def encode(box, point, stride, reg_max=16):
    """Distance logits (4, reg_max) whose softmax expectation is exactly ``box``'s distances from ``point``."""
    dist = ops.bbox2dist(torch.tensor(point), torch.tensor(box) / stride, reg_max - 1)
    logits = torch.full((4, reg_max), -1e4)
    for side, d in enumerate(dist.tolist()):
        low = int(d)
        for b, w in ((low, low + 1 - d), (low + 1, d - low)):
            if w > 0:
                logits[side, b] = math.log(w)
    return logits


def test_decode_round_trip_and_row_order():
    """A box encoded as distance distributions at one point decodes back to itself, in input pixels."""
    head = YOLOv8Head((8, 8, 8), num_classes=2, strides=STRIDES)
    raw = [torch.full((1, 66, 64 // s, 64 // s), -1e4) for s in STRIDES]
    box = [21.0, 13.0, 43.2, 37.0]  # pixels; P3 cell x=3, y=2 has its centre at (28, 20)
    raw[0][0, :64, 2, 3] = encode(box, [3.5, 2.5], 8).reshape(-1)
    raw[0][0, 64:, 2, 3] = torch.tensor([0.0, math.log(0.9 / 0.1)])
    other = [32.0, 0.0, 96.0, 64.0]  # on P5, cell x=1, y=0 (centre (48, 16))
    raw[2][0, :64, 0, 1] = encode(other, [1.5, 0.5], 32).reshape(-1)
    rows = head.decode(raw)
    assert rows.shape == (1, 64 + 16 + 4, 6)
    assert torch.allclose(rows[0, 2 * 8 + 3, :4], torch.tensor(box), atol=1e-4)  # P3 row = y * W + x
    assert rows[0, 2 * 8 + 3, 4:].tolist() == pytest.approx([0.5, 0.9])
    assert torch.allclose(rows[0, 64 + 16 + 1, :4], torch.tensor(other), atol=1e-4)  # P5 after P3 and P4
    assert rows[0, 0, 4:].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)  # class scores sigmoided


def test_dfl_matches_a_hand_computation():
    logits = torch.zeros(1, 4, 16)
    logits[0, :, 2], logits[0, :, 3] = 1.0, 2.0
    target = torch.tensor([[2.3, 2.3, 3.0, 0.0]])
    z = 14 + math.e + math.e**2  # softmax denominator: 14 bins at exp(0)
    ce = [-math.log((math.exp(logits[0, 0, b].item())) / z) for b in range(16)]
    by_hand = [0.7 * ce[2] + 0.3 * ce[3], 0.7 * ce[2] + 0.3 * ce[3], ce[3], ce[0]]  # 3.0 and 0.0 sit on one bin
    assert dfl_loss(logits, target).item() == pytest.approx(sum(by_hand) / 4, rel=1e-5)


def test_pad_targets_groups_boxes_by_image():
    targets = torch.tensor([[1, 2, 10, 10, 4, 2], [0, 1, 5, 5, 2, 2], [1, 0, 20, 20, 2, 4]], dtype=torch.float32)
    labels, boxes, mask = pad_targets(targets, batch_size=3)
    assert labels.tolist() == [[1, 0], [2, 0], [0, 0]]
    assert mask.tolist() == [[True, False], [True, True], [False, False]]
    assert boxes[1].tolist() == [[8.0, 9.0, 12.0, 11.0], [19.0, 18.0, 21.0, 22.0]]


def test_loss_is_lowest_for_perfect_boxes_and_trains_every_branch():
    """Points that predict the target box exactly have no box loss left; wrong boxes cost more, and gradients
    reach both branches of every level that has assigned points."""
    torch.manual_seed(0)
    head = YOLOv8Head((8, 8, 8), num_classes=2, strides=STRIDES)
    criterion = head.make_loss(64)
    assert isinstance(criterion, YOLOv8Loss) and criterion.names == ("box", "cls", "dfl")
    target = torch.tensor([[0, 1, 28.0, 28.0, 24.0, 24.0]])  # one 24x24 box of class 1 centred at (28, 28)
    gt = ops.xywh2xyxy(target[0, 2:6])
    perfect = [torch.full((1, 66, 64 // s, 64 // s), -1e4) for s in STRIDES]
    for level, s in enumerate(STRIDES):
        for y in range(64 // s):
            for x in range(64 // s):
                perfect[level][0, :64, y, x] = encode(gt.tolist(), [x + 0.5, y + 0.5], s).reshape(-1)
        perfect[level][0, 64:] = 0.0
    _, items = criterion(perfect, target)
    assert items[0].item() == pytest.approx(0.0, abs=1e-4)
    shifted = [p.clone() for p in perfect]
    shifted[0][0, :64] = torch.roll(shifted[0][0, :64].view(4, 16, 8, 8), 1, dims=1).view(64, 8, 8)  # +1 bin
    _, worse = criterion(shifted, target)
    assert worse[0] > 0.05 and worse[2] > items[2]  # every P3 side one bin (8 px) too long

    x = [torch.randn(1, 8, 64 // s, 64 // s) for s in STRIDES]
    loss, items = criterion(head(x), target)
    assert loss.item() == pytest.approx(items.sum().item())  # batch of one
    loss.backward()
    assert head.box_branches[0][0].conv.weight.grad.abs().sum() > 0
    assert head.cls_branches[2][2].weight.grad.abs().sum() > 0  # every point learns "no object" too


def test_loss_without_targets_only_pushes_scores_down():
    head = YOLOv8Head((8, 8, 8), num_classes=2, strides=STRIDES)
    loss, items = head.make_loss(64)(head([torch.randn(2, 8, 64 // s, 64 // s) for s in STRIDES]), torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0
    loss.backward()
    # A zero gradient, not none: under DDP every rank must produce one for every parameter, boxes or not.
    grad = head.box_branches[0][2].weight.grad
    assert grad is not None and grad.abs().sum() == 0
