"""The YOLO-family presets build the reference backbones: parameter counts and channels per size as
docs/yolo-backbones.md states them (counted by formula in bench/yolo_backbone_params.py), RepVGG/ReLU structure,
and MMYOLO/MMDetection ``backbone.*`` checkpoints loading under the "same names" layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from yoloswap.backbones.key_maps import match_keys
from yoloswap.backbones.sources import build_backbone, library_models
from yoloswap.config.presets import load_preset_file, presets_dir
from yoloswap.models.yolo_blocks import BottleRep, ConvBlock, RepVGGBlock

DOC = Path(__file__).resolve().parents[1] / "docs" / "yolo-backbones.md"
NEW_PRESETS = [
    "yolov6n", "yolov6t", "yolov6s", "yolov6m", "yolov6l", "yolov8n", "yolov8s", "yolov8m", "yolov8l",
    "cspnext-t", "cspnext-s", "cspnext-m", "cspnext-l",
]  # fmt: skip


def _documented() -> dict[str, tuple[int, list[int]]]:
    """The reference table of the docs page: preset -> (parameters, [P3, P4, P5 channels])."""
    rows = re.findall(r"^\| `([\w-]+)` \| ([\d,]+) \| (\d+)/(\d+)/(\d+) \|", DOC.read_text(), re.M)
    return {name: (int(p.replace(",", "")), [int(a), int(b), int(c)]) for name, p, a, b, c in rows}


def _body(name: str) -> nn.Module:
    return build_backbone(load_preset_file(presets_dir() / f"{name}.yaml")).body


def test_docs_list_every_new_preset():
    assert sorted(_documented()) == sorted(NEW_PRESETS)


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_preset_matches_reference_parameters_and_channels(name):
    params, channels = _documented()[name]
    with torch.device("meta"):
        body = _body(name)
    assert sum(p.numel() for p in body.parameters()) == params
    small = _body(name) if name.endswith(("n", "t")) else None
    if small is not None:  # a real forward for the small sizes; the probe measures the others in their own tests
        with torch.no_grad():
            outs = small.eval()(torch.zeros(1, 3, 64, 64))
        assert [o.shape[1] for o in outs] == channels
        assert [64 // o.shape[-1] for o in outs] == [8, 16, 32]


def test_yolov6_is_repvgg_with_relu_everywhere():
    body = _body("yolov6n")
    reps = [m for m in body.modules() if isinstance(m, RepVGGBlock)]
    # stem + per stage (downsample + n blocks) at n = [2, 4, 6, 2]
    assert len(reps) == 1 + (1 + 2) + (1 + 4) + (1 + 6) + (1 + 2)
    acts = {type(m) for m in body.modules() if isinstance(m, (nn.ReLU, nn.SiLU, nn.Hardswish, nn.GELU))}
    assert acts == {nn.ReLU}


def _acts(body: nn.Module) -> set[type]:
    return {type(m) for m in body.modules() if isinstance(m, (nn.ReLU, nn.SiLU, nn.Hardswish, nn.GELU))}


def test_yolov6m_is_cspbep_of_repvgg_bottlereps_with_relu():
    with torch.device("meta"):
        body = _body("yolov6m")
    # BepC3 blocks [6, 12, 18, 6] x 0.6 -> [4, 7, 11, 4], each n // 2 BottleReps of two RepVGG blocks
    assert len([m for m in body.modules() if isinstance(m, BottleRep)]) == 2 + 3 + 5 + 2
    assert all(isinstance(m.conv1, RepVGGBlock) for m in body.modules() if isinstance(m, BottleRep))
    assert not [m for m in body.modules() if isinstance(m, ConvBlock)]
    assert _acts(body) == {nn.ReLU}
    assert body.stage2[0][1].conv1.conv.out_channels == int(192 * 2 / 3)  # hidden ratio 2/3 of the stage width


def test_yolov6l_is_cspbep_of_conv_blocks_with_silu_and_mmyolos_conv_bias():
    with torch.device("meta"):
        body = _body("yolov6l")
    assert not [m for m in body.modules() if isinstance(m, RepVGGBlock)]
    assert len([m for m in body.modules() if isinstance(m, BottleRep)]) == 3 + 6 + 9 + 3
    convs = [m for m in body.modules() if isinstance(m, ConvBlock)]
    assert convs and all(m.block.conv.bias is not None for m in convs)
    assert _acts(body) == {nn.SiLU}
    assert body.stage2[0][1].conv1.conv.out_channels == 256 // 2


@pytest.mark.parametrize(
    ("name", "mmyolo_keys"),
    [
        ("yolov6m", ["backbone.stem.rbr_dense.conv.weight", "backbone.stage1.0.1.block.conv1.conv1.rbr_1x1.bn.weight",
                     "backbone.stage1.0.1.block.conv1.alpha", "backbone.stage4.1.conv2.conv.weight"]),
        ("yolov6l", ["backbone.stem.block.conv.bias", "backbone.stage3.0.1.block.block.7.conv2.block.bn.running_mean",
                     "backbone.stage2.0.1.conv3.conv.weight"]),
    ],
)  # fmt: skip
def test_mmyolo_yolov6_checkpoint_names_load_by_prefix(name, mmyolo_keys):
    """MMYOLO's YOLOv6-m/l COCO files store ``YOLOv6CSPBep`` under ``backbone.`` with these names."""
    with torch.device("meta"):
        body = _body(name)
    ours = {k: tuple(v.shape) for k, v in body.state_dict().items()}
    ckpt = {f"backbone.{k}": shape for k, shape in ours.items()}
    ckpt["neck.reduce_layers.2.conv.weight"] = (512, 1024, 1, 1)  # the detector's other parts are never loaded
    assert set(mmyolo_keys) <= set(ckpt)
    match = match_keys(ours, ckpt)
    assert (match.prefix, match.layout) == ("backbone.", "same names")
    assert not match.missing and not match.mismatched


def test_own_source_lists_the_new_models():
    assert {"cspdarknet", "efficientrep", "cspbep", "c2f-darknet", "cspnext"} <= set(library_models("yoloswap"))


def test_mmdet_cspnext_checkpoint_names_load_by_prefix():
    """A RTMDet ImageNet file stores the backbone under ``backbone.`` with MMDetection's names."""
    body = _body("cspnext-t")
    ckpt = {f"backbone.{k}": tuple(v.shape) for k, v in body.state_dict().items()}
    ckpt["head.fc.weight"] = (1000, 384)  # the classifier of the ImageNet file, never the backbone
    assert "backbone.stage1.1.blocks.0.conv2.depthwise_conv.conv.weight" in ckpt  # MMDetection's own name
    match = match_keys({k: tuple(v.shape) for k, v in body.state_dict().items()}, ckpt)
    assert match.prefix == "backbone."
    assert match.layout == "same names"
    assert not match.missing and not match.mismatched and match.pairs


def test_a_cspbep_setting_the_model_refuses_is_one_line_naming_the_field(cli, tmp_path):
    bad = tmp_path / "bad6m.yaml"
    bad.write_text((presets_dir() / "yolov6m.yaml").read_text().replace("block: repvgg", "block: rep"))
    code, _, err = cli("info", "--backbone", str(bad))
    assert code != 0
    assert err.strip().splitlines() == ["Error: model.kwargs: CSPBep block must be one of repvgg, conv, got 'rep'"]
