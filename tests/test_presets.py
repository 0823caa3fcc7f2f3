"""Presets hold what a person decides, are validated strictly, and never store channels."""

from __future__ import annotations

import pytest
import yaml

from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.errors import ConfigError, UsageError
from yoloswap.presets import load_preset_file, preset_names, presets_dir

REQUIRED = ["convnext-tiny", "efficientnet-b1", "mobilenetv3-small", "mocov3-resnet50", "resnet50", "swin-tiny"]


def test_every_required_preset_ships():
    assert set(REQUIRED) <= set(preset_names())


@pytest.mark.parametrize("name", REQUIRED)
def test_preset_records_the_decisions_and_no_channels(name):
    p = resolve_backbone(name)
    assert p.name == name and p.family and p.description
    assert p.weights and p.weights != "none", "every required preset names its pretrained weights"
    assert len(p.normalize.mean) == 3 and len(p.normalize.std) == 3
    assert p.optimizer.name in ("sgd", "adamw")
    raw = yaml.safe_load((presets_dir() / f"{name}.yaml").read_text())
    assert "channels" not in repr(raw).lower()


def test_family_optimizer_recommendations():
    assert resolve_backbone("convnext-tiny").optimizer.name == "adamw"
    assert resolve_backbone("swin-tiny").optimizer.name == "adamw"
    assert resolve_backbone("resnet50").optimizer.name == "sgd"
    assert resolve_backbone("swin-tiny").optimizer.lr < resolve_backbone("resnet50").optimizer.lr


def test_unknown_backbone_suggests_the_closest_name():
    with pytest.raises(UsageError, match=r"^unknown backbone 'convnxt-tiny'; did you mean 'convnext-tiny'\?$"):
        resolve_backbone("convnxt-tiny")


def _write(tmp_path, text):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


BASE = """
family: resnet
description: mine
model: {source: torchvision, name: resnet18}
"""


def test_a_users_own_preset_file_is_accepted(tmp_path):
    p = resolve_backbone(str(_write(tmp_path, BASE)))
    assert p.name == "mine" and p.model.name == "resnet18"


def test_unknown_key_names_file_field_and_closest_key(tmp_path):
    path = _write(tmp_path, BASE + "froze_stages: 1\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown field 'froze_stages'; did you mean 'frozen_stages'\?"):
        load_preset_file(path)


def test_unknown_nested_key_names_its_full_path(tmp_path):
    path = _write(tmp_path, BASE + "optimizer: {name: sgd, lrr: 0.1}\n")
    with pytest.raises(ConfigError, match=r"unknown field 'optimizer\.lrr'; did you mean 'lr'"):
        load_preset_file(path)


def test_wrong_type_names_the_field(tmp_path):
    path = _write(tmp_path, BASE + "drop_path_rate: lots\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: field 'drop_path_rate': expected float"):
        load_preset_file(path)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = _write(tmp_path, BASE + "model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml:\d+: malformed YAML"):
        load_preset_file(path)


def test_missing_required_field(tmp_path):
    path = _write(tmp_path, "family: x\ndescription: y\n")
    with pytest.raises(ConfigError, match=r"missing required field 'model'"):
        load_preset_file(path)


def test_bad_source_and_bad_layers(tmp_path):
    path = _write(tmp_path, "family: x\ndescription: y\nmodel: {source: tim, name: a}\n")
    with pytest.raises(ConfigError, match=r"\.yaml: field 'model.source'.*did you mean 'timm'"):
        resolve_backbone(str(path))  # the source table, not the schema, knows the sources
    with pytest.raises(ConfigError, match=r"field 'model.layers': needs exactly 3"):
        load_preset_file(_write(tmp_path, BASE.replace("resnet18}", "resnet18, layers: [layer2]}")))


def test_preset_round_trips_through_plain_data():
    from yoloswap.presets import preset_from_dict

    p = resolve_backbone("mobilenetv3-small")
    again = preset_from_dict(p.to_dict())
    assert again.model == p.model and again.optimizer == p.optimizer and again.normalize == p.normalize
