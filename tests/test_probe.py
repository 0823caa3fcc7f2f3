"""The probe measures exactly the channels the issue table promises, at any input size, on CPU and meta."""

from __future__ import annotations

import pytest

from yoloswap.errors import UsageError
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.probe import parse_img_size, probe

EXPECTED = {
    "resnet50": (512, 1024, 2048),
    "swin-tiny": (192, 384, 768),
    "convnext-tiny": (192, 384, 768),
    "mobilenetv3-small": (24, 48, 96),
    "efficientnet-b1": (40, 112, 320),
    "mocov3-resnet50": (512, 1024, 2048),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("size", [(640, 640), (512, 384)], ids=["640", "512x384"])
def test_cpu_probe_channels_and_strides(name, size):
    r = probe(resolve_backbone(name), size, "cpu")
    assert r.channels == EXPECTED[name]
    assert r.strides == (8, 16, 32)
    h, w = size
    assert [s[2:] for s in r.shapes] == [(h // s, w // s) for s in (8, 16, 32)]
    assert r.device == "cpu" and r.params > 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_meta_probe_at_640(name):
    r = probe(resolve_backbone(name), (640, 640), "meta")
    assert r.channels == EXPECTED[name] and r.strides == (8, 16, 32)
    assert r.device == "meta"


def test_backbones_accept_small_square_inputs():
    for name in ("swin-tiny", "convnext-tiny"):
        assert probe(resolve_backbone(name), (320, 320), "cpu").shapes[2][2:] == (10, 10)


def test_any_timm_model_by_measured_stride():
    r = probe(resolve_backbone("timm:resnet18"), (640, 640), "meta")
    assert r.channels == (128, 256, 512)


def test_any_torchvision_model_by_measured_stride():
    r = probe(resolve_backbone("torchvision:swin_t"), (512, 384), "cpu")
    assert r.channels == (192, 384, 768)
    assert [s[2:] for s in r.shapes] == [(64, 48), (32, 24), (16, 12)]  # NHWC features came back NCHW


def test_plain_vit_is_refused_with_the_reason():
    with pytest.raises(UsageError, match=r"strides \[16\].*needs strides 8, 16 and 32"):
        probe(resolve_backbone("timm:vit_small_patch16_224"), (640, 640), "meta")


def test_unknown_library_model_suggests_names():
    with pytest.raises(UsageError, match=r"did you mean 'timm:convnext_tiny'"):
        resolve_backbone("timm:convnxt_tiny")
    with pytest.raises(UsageError, match=r"did you mean 'torchvision:resnet50'"):
        resolve_backbone("torchvision:resnet5O")


@pytest.mark.parametrize("text,expected", [("640", (640, 640)), ("512x384", (512, 384)), (320, (320, 320))])
def test_img_size_parsing(text, expected):
    assert parse_img_size(text) == expected


@pytest.mark.parametrize("text", ["abc", "600", "640x", "0"])
def test_img_size_rejects_bad_values(text):
    with pytest.raises(UsageError, match="--img-size"):
        parse_img_size(text)
