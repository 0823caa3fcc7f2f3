"""CSPDarknet and its blocks match YOLOv5 v6.1: sizes, FLOPs, output strides, stage names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yoloswap.errors import ConfigError
from yoloswap.models.blocks import C3, SPPF, Bottleneck, Conv
from yoloswap.models.complexity import count_gflops, count_params
from yoloswap.models.cspdarknet import CSPDarknet, scale_channels, scale_depth
from yoloswap.models.detector import Detector
from yoloswap.models.head import YOLOv5Head
from yoloswap.models.neck import YOLOv5PAFPN


def build_yolov5(deepen: float, widen: float, num_classes: int = 80) -> Detector:
    """YOLOv5 assembled the yoloswap way: the backbone's widths are measured, never typed."""
    backbone = CSPDarknet(deepen, widen)
    channels = [f.shape[1] for f in backbone(torch.zeros(1, 3, 64, 64))]
    neck = YOLOv5PAFPN(channels, channels, depth=scale_depth(3, deepen))
    head = YOLOv5Head(neck.out_channels, num_classes, strides=(8, 16, 32))
    return Detector(backbone, neck, head, mean=(0, 0, 0), std=(1, 1, 1))


@pytest.mark.parametrize(
    ("deepen", "widen", "params", "gflops"),
    [
        (0.33, 0.25, 1_872_157, 4.47),  # yolov5n
        (0.33, 0.50, 7_235_389, 16.43),  # yolov5s
        (0.67, 0.75, 21_190_557, 48.87),  # yolov5m
    ],
)
def test_assembled_yolov5_matches_reference_size_and_flops(deepen, widen, params, gflops):
    with torch.device("meta"):
        model = build_yolov5(deepen, widen)
        measured = count_gflops(model, torch.zeros(1, 3, 640, 640))
    assert count_params(model) == params
    assert measured == pytest.approx(gflops, rel=0.02)


def test_scaling_rules():
    assert [scale_channels(c, 0.5) for c in (64, 128, 256, 512, 1024)] == [32, 64, 128, 256, 512]
    assert scale_channels(64, 0.25) == 16
    assert scale_channels(100, 0.33) == 40  # rounded up to a multiple of 8
    assert [scale_depth(n, 0.33) for n in (3, 6, 9)] == [1, 2, 3]
    assert [scale_depth(n, 0.67) for n in (3, 6, 9)] == [2, 4, 6]
    assert scale_depth(1, 0.1) == 1  # never zero blocks


def test_cspdarknet_s_outputs_strides_8_16_32_with_128_256_512_channels():
    backbone = CSPDarknet(0.33, 0.5).eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 256, 192))
    assert [tuple(f.shape) for f in features] == [(1, 128, 32, 24), (1, 256, 16, 12), (1, 512, 8, 6)]


def test_cspdarknet_stages_are_named_for_uniform_freezing():
    backbone = CSPDarknet(0.33, 0.25)
    names = [name for name, _ in backbone.named_children()]
    assert names == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert isinstance(backbone.stage4[-1], SPPF)  # SPPF closes the last stage
    assert backbone.stem.conv.kernel_size == (6, 6) and backbone.stem.conv.stride == (2, 2)
    assert backbone.stem.conv.padding == (2, 2)


def test_cspdarknet_rejects_non_positive_multipliers():
    with pytest.raises(ConfigError, match="widen"):
        CSPDarknet(0.33, 0.0)


def test_conv_is_biasless_conv_bn_silu_with_yolov5_norm_settings():
    conv = Conv(8, 16, k=3, s=2)
    assert conv.conv.bias is None and conv.conv.padding == (1, 1)
    assert conv.bn.eps == 1e-3 and conv.bn.momentum == 0.03
    assert isinstance(conv.act, nn.SiLU)
    assert conv(torch.zeros(2, 8, 10, 10)).shape == (2, 16, 5, 5)


def test_bottleneck_adds_residual_only_when_asked_and_shapes_agree():
    assert Bottleneck(16, 16, shortcut=True).add
    assert not Bottleneck(16, 16, shortcut=False).add
    assert not Bottleneck(16, 32, shortcut=True).add


def test_c3_layout_and_parameter_count():
    block = C3(64, 64, n=1)
    # cv1, cv2: 64->32 1x1; cv3: 64->64 1x1; one bottleneck 32->32 1x1 and 32->32 3x3; each conv has a BN (2*c).
    expected = (64 * 32 + 64) * 2 + (64 * 64 + 128) + (32 * 32 + 64) + (32 * 32 * 9 + 64)
    assert count_params(block) == expected
    assert block(torch.zeros(1, 64, 8, 8)).shape == (1, 64, 8, 8)
    assert len(C3(64, 64, n=3).m) == 3


def test_sppf_pools_three_times_in_sequence():
    block = SPPF(64, 64, k=5)
    assert block.cv1.conv.out_channels == 32 and block.cv2.conv.in_channels == 128
    with torch.no_grad():
        x = torch.randn(1, 64, 13, 13)
        hidden = block.cv1(x)
        pool = nn.functional.max_pool2d
        y1 = pool(hidden, 5, 1, 2)
        y2 = pool(hidden, 9, 1, 4)  # two 5x5 pools == one 9x9 pool
        y3 = pool(hidden, 13, 1, 6)
        expected = block.cv2(torch.cat((hidden, y1, y2, y3), dim=1))
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_count_gflops_restores_each_training_flag():
    model = build_yolov5(0.33, 0.25)
    model.train()
    model.backbone.stem.bn.eval()  # e.g. a frozen norm
    count_gflops(model, torch.zeros(1, 3, 64, 64))
    assert model.training and model.neck.training
    assert not model.backbone.stem.bn.training


def test_backward_reaches_every_trainable_parameter():
    from yoloswap.losses import YOLOv5Loss

    torch.manual_seed(0)
    model = build_yolov5(0.33, 0.25, num_classes=2).train()
    images = torch.rand(2, 3, 64, 64)
    # boxes small and large enough to match anchors on every level
    targets = torch.tensor(
        [[0, 0, 20.0, 20.0, 12.0, 14.0], [0, 1, 40.0, 30.0, 40.0, 50.0], [1, 1, 32.0, 32.0, 60.0, 60.0]]
    )
    criterion = YOLOv5Loss(2, model.head.anchors, model.strides, img_size=64)
    loss, _ = criterion(model(images), targets)
    loss.backward()
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    assert trainable
    missing = [name for name, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    silent = [name for name, p in trainable if not p.grad.abs().sum() > 0]
    assert silent == []
