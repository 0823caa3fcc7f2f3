"""The PAFPN neck honours any widths; the head emits (N, na, H, W, 5+nc) logits with YOLOv5's priors."""

from __future__ import annotations

import math

import pytest
import torch

from yoloswap.models.complexity import count_params
from yoloswap.models.cspdarknet import CSPDarknet
from yoloswap.models.detector import Detector
from yoloswap.models.head import COCO_ANCHORS, YOLOv5Head
from yoloswap.models.neck import YOLOv5PAFPN


def features(channels, height, width, batch=1):
    return [torch.zeros(batch, c, height // s, width // s) for c, s in zip(channels, (8, 16, 32))]


@pytest.mark.parametrize(("height", "width"), [(640, 640), (384, 512)])
def test_neck_honours_out_channels_different_from_its_inputs(height, width):
    with torch.device("meta"):  # shapes only; a ResNet-50-wide input at 640 would be slow on CPU
        neck = YOLOv5PAFPN((512, 1024, 2048), (128, 256, 512), depth=1)
        outputs = neck(features((512, 1024, 2048), height, width))
    assert neck.out_channels == (128, 256, 512)
    assert [tuple(o.shape) for o in outputs] == [
        (1, 128, height // 8, width // 8),
        (1, 256, height // 16, width // 16),
        (1, 512, height // 32, width // 32),
    ]


def test_neck_real_forward_with_odd_foreign_widths():
    neck = YOLOv5PAFPN((24, 48, 96), (40, 80, 120), depth=2).eval()
    with torch.no_grad():
        outputs = neck([torch.randn(2, c, 64 // s, 96 // s) for c, s in zip((24, 48, 96), (8, 16, 32))])
    assert [tuple(o.shape) for o in outputs] == [(2, 40, 8, 12), (2, 80, 4, 6), (2, 120, 2, 3)]


def test_neck_with_equal_widths_is_the_yolov5s_neck():
    neck = YOLOv5PAFPN((128, 256, 512), (128, 256, 512), depth=1)
    # YOLOv5s v6.1 layers 10-23: the model's 7,235,389 minus backbone (4,171,456) and Detect ((896 + 3) * 255).
    assert count_params(neck) == 2_834_688
    assert count_params(neck) == 7_235_389 - count_params(CSPDarknet(0.33, 0.5)) - (128 + 256 + 512 + 3) * 255
    assert all(not b.add for c3 in (neck.top_down4, neck.top_down3, neck.bottom_up4, neck.bottom_up5) for b in c3.m)


def test_neck_rejects_wrong_number_of_levels():
    with pytest.raises(ValueError, match="3 input and 3 output"):
        YOLOv5PAFPN((64, 128), (64, 128, 256), depth=1)


def test_head_output_layout():
    head = YOLOv5Head((16, 32, 64), num_classes=3, strides=(8, 16, 32))
    outputs = head(features((16, 32, 64), 128, 96, batch=2))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 16, 12, 8), (2, 3, 8, 6, 8), (2, 3, 4, 3, 8)]


def test_head_anchor_layout_matches_conv_channel_layout():
    """Channel a*(5+nc)+k of the conv must land in output[:, a, ..., k]."""
    head = YOLOv5Head((4, 4, 4), num_classes=2, strides=(8, 16, 32))
    x = features((4, 4, 4), 64, 64)
    raw = head.convs[0](x[0])  # (1, 3*7, 8, 8)
    out = head(x)[0]
    assert torch.equal(out[0, 2, 5, 1, 4], raw[0, 2 * 7 + 4, 5, 1])
    assert torch.equal(out[0, 1, 0, 7, 6], raw[0, 1 * 7 + 6, 0, 7])


def test_head_buffers_and_bias_priors():
    torch.manual_seed(0)
    reference = YOLOv5Head((8, 8, 8), num_classes=80, strides=(8, 16, 32))
    torch.manual_seed(0)  # same default init, so the difference is the prior alone
    plain_biases = [torch.nn.Conv2d(8, 3 * 85, 1).bias.detach() for _ in range(3)]
    assert reference.anchors.shape == (3, 3, 2)
    assert torch.equal(reference.anchors, torch.tensor(COCO_ANCHORS, dtype=torch.float32))
    assert reference.strides.tolist() == [8, 16, 32]
    assert "anchors" in reference.state_dict() and not any(p is reference.anchors for p in reference.parameters())
    for conv, plain, stride in zip(reference.convs, plain_biases, (8, 16, 32)):
        delta = (conv.bias.detach() - plain).view(3, 85)
        assert torch.allclose(delta[:, :4], torch.zeros(3, 4))
        assert torch.allclose(delta[:, 4], torch.full((3,), math.log(8 / (640 / stride) ** 2)))
        assert torch.allclose(delta[:, 5:], torch.full((3, 80), math.log(0.6 / (80 - 0.99999))))


def test_head_decodes_to_xyxy_rows_scored_objectness_times_class():
    head = YOLOv5Head((4, 4, 4), num_classes=2, strides=(8, 16, 32))
    raw = [torch.full((1, 3, 64 // s, 64 // s, 7), -20.0) for s in (8, 16, 32)]
    raw[0][0, 1, 2, 3, :4] = 0.0  # anchor 1 of P3 (16x30): centre (3.5, 2.5) cells, size = anchor
    raw[0][0, 1, 2, 3, 4:] = torch.tensor([0.0, 20.0, 0.0])  # objectness 0.5, classes ~1.0 and 0.5
    rows = head.decode(raw)
    assert rows.shape == (1, 3 * (64 + 16 + 4), 6)
    row = rows[0, 1 * 64 + 2 * 8 + 3]
    assert torch.allclose(row[:4], torch.tensor([28.0 - 8, 20.0 - 15, 28.0 + 8, 20.0 + 15]))
    assert row[4:].tolist() == pytest.approx([0.5, 0.25])


def test_head_rejects_mismatched_levels():
    with pytest.raises(ValueError, match="must agree"):
        YOLOv5Head((16, 32), num_classes=2, strides=(8, 16, 32))


def test_detector_normalises_and_reports_classes_and_strides():
    torch.manual_seed(0)
    backbone = CSPDarknet(0.33, 0.25)
    neck = YOLOv5PAFPN((64, 128, 256), (64, 128, 256), depth=1)
    head = YOLOv5Head(neck.out_channels, num_classes=5, strides=(8, 16, 32))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    model = Detector(backbone, neck, head, mean=mean, std=std).eval()
    assert model.num_classes == 5 and model.strides == (8, 16, 32)
    assert "mean" not in model.state_dict()
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        outputs = model(images)
        normalised = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        by_hand = head(neck(backbone(normalised)))
    assert [tuple(o.shape) for o in outputs] == [(1, 3, 8, 12, 10), (1, 3, 4, 6, 10), (1, 3, 2, 3, 10)]
    for ours, theirs in zip(outputs, by_hand):
        assert torch.allclose(ours, theirs, atol=1e-5)
