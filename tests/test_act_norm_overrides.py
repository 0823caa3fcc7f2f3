"""``act``/``norm``/``act_scope`` overrides reach every layer they claim to: a walk of the built model finds no
module of the replaced activation type, and every BatchNorm in scope carries the asked momentum and eps."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from torch import nn

from yoloswap.assembly import build_detector, describe_detector
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.sources import build_backbone
from yoloswap.config.presets import NormOverride, preset_from_dict
from yoloswap.errors import ConfigError
from yoloswap.models.yolo_blocks import RepVGGBlock


def _preset(backbone: str, **changes):
    return dataclasses.replace(resolve_backbone(backbone), **changes)


def _types(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules()}


def test_yolov6s_with_relu_has_relu_in_every_block_and_the_reference_structure():
    backbone = build_backbone(_preset("yolov6s", act="relu")).body
    assert nn.SiLU not in _types(backbone)
    reps = [m for m in backbone.modules() if isinstance(m, RepVGGBlock)]
    assert len(reps) == 1 + 3 + 5 + 7 + 3 and all(isinstance(r.act, nn.ReLU) for r in reps)
    assert isinstance(backbone.stage4[1].conv1.act, nn.ReLU)  # SimSPPF too (MMYOLO's override stops here)


def test_scope_backbone_leaves_neck_and_head_scope_all_reaches_them():
    model, plan = build_detector(_preset("yolov8n", act="relu6"), 3, (64, 64))
    assert nn.SiLU not in _types(model.backbone) and nn.SiLU in _types(model.neck)
    model, plan = build_detector(_preset("yolov8n", act="relu6", act_scope="all"), 3, (64, 64))
    assert nn.SiLU not in _types(model) and nn.ReLU6 in _types(model.neck)
    assert describe_detector(model, plan, (64, 64))["activations"] == {
        "backbone": ["relu6"], "neck": ["relu6"], "head": []
    }


def test_cspdarknet_is_rewritten_after_construction():
    backbone = build_backbone(_preset("yolov5n", act="hardswish")).body
    assert nn.SiLU not in _types(backbone) and nn.Hardswish in _types(backbone)


@pytest.mark.parametrize("name, old", [("timm:resnet18", nn.ReLU), ("timm:convnext_atto", nn.GELU)])
def test_timm_models_take_the_activation(name, old):
    backbone = build_backbone(_preset(name, act="silu"))
    assert old not in _types(backbone.body) and nn.SiLU in _types(backbone.body)
    assert backbone.override_notes == ()


def test_norm_override_sets_every_batchnorm_and_says_when_there_is_none():
    backbone = build_backbone(_preset("cspnext-t", weights="none", norm=NormOverride(momentum=0.1, eps=1e-5))).body
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(b.momentum == 0.1 and b.eps == 1e-5 for b in bns)
    convnext = build_backbone(_preset("timm:convnext_atto", norm=NormOverride(eps=1e-3)))
    assert convnext.override_notes == ("norm: timm:convnext_atto has no BatchNorm layers, so momentum/eps do not apply",)


def test_unknown_activation_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="unknown activation 'rleu'.*did you mean 'relu'"):
        build_backbone(_preset("yolov6n", act="rleu"))
    with pytest.raises(ConfigError, match="act_scope"):
        preset_from_dict({**resolve_backbone("yolov6n").to_dict(), "act_scope": "neck"})


@pytest.mark.slow
def test_train_yolov6_with_relu_records_it_and_its_checkpoint_rebuilds_it(cli, tmp_path):
    """The seed's ``yoloswap train --backbone yolov6s --act relu``, at the n size (same structure) to stay cheap."""
    from tests.make_data import ultralytics_set
    from yoloswap.assembly import load_detector

    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=2)
    run = tmp_path / "run"
    code, _, err = cli("train", "--backbone", "yolov6n", "--act", "relu", "--act-scope", "all", "--epochs", "1",
                       "--img-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu",
                       "--data", str(data), "--out", str(run))
    assert code == 0, err
    assert "activations in use: backbone relu; neck relu" in err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["preset"]["act"] == "relu" and config["preset"]["act_scope"] == "all"
    model = load_detector(run / "weights" / "last.pt")[0]
    assert nn.SiLU not in _types(model)
