"""Presets hold what a person decides, are validated strictly, and never store channels."""

from __future__ import annotations

import pytest
import yaml

from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.errors import ConfigError, UsageError
from yoloswap.config.presets import load_preset_file, preset_names, presets_dir

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
    from yoloswap.config.presets import preset_from_dict

    p = resolve_backbone("mobilenetv3-small")
    again = preset_from_dict(p.to_dict())
    assert again.model == p.model and again.optimizer == p.optimizer and again.normalize == p.normalize


# ------------------------------------------------------------------------------------------------ what README promises

SGD_PRESETS = ["resnet50", "mocov3-resnet50", "efficientnet-b1", "mobilenetv3-small",
               "yolov5n", "yolov5s", "yolov5m", "yolov5l"]


@pytest.mark.parametrize("name", SGD_PRESETS)
def test_readme_sgd_recipe_lr_001_momentum_0937_nesterov(name):
    import torch

    from yoloswap.training.optim import build_optimizer

    opt = resolve_backbone(name).optimizer
    assert (opt.name, opt.lr, opt.momentum) == ("sgd", 0.01, 0.937)
    built = build_optimizer(torch.nn.Conv2d(3, 4, 1), opt.name, opt.lr, opt.momentum, opt.weight_decay)
    assert isinstance(built, torch.optim.SGD)
    assert all(g["nesterov"] and g["momentum"] == 0.937 and g["lr"] == 0.01 for g in built.param_groups)


@pytest.mark.parametrize("name", ["swin-tiny", "convnext-tiny"])
def test_readme_adamw_recipe_lr_0001_weight_decay_005(name):
    import torch

    from yoloswap.training.optim import build_optimizer

    opt = resolve_backbone(name).optimizer
    assert (opt.name, opt.lr, opt.weight_decay) == ("adamw", 0.001, 0.05)
    built = build_optimizer(torch.nn.Conv2d(3, 4, 1), opt.name, opt.lr, opt.momentum, opt.weight_decay)
    assert isinstance(built, torch.optim.AdamW)
    decay = [g for g in built.param_groups if g["kind"] == "decay"]
    assert decay and all(g["weight_decay"] == 0.05 and g["lr"] == 0.001 for g in decay)


@pytest.mark.parametrize("name", ["resnet50", "mocov3-resnet50"])
def test_readme_resnet50_freezes_stem_and_layer1_with_norm_eval(name):
    p = resolve_backbone(name)
    assert p.frozen_stages == 1 and p.norm_eval is True


def readme_neck_width_table() -> list[dict]:
    """The rows of the "Neck width" table in docs/backbones.md (moved there from README)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "backbones.md").read_text()
    section = text.split("### Neck width", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0] or cells[0] in ("backbone",) or set(cells[0]) <= {"-"}:
            continue
        width = cells[1].replace("*", "")
        rows.append({
            "backbone": cells[0],
            "width": width.split()[0],
            "default": "default" in width,
            "channels": [int(c) for c in cells[2].split("/")],
            "neck_m": float(cells[3].removesuffix("M")),
            "params_m": float(cells[4].removesuffix("M")),
            "gflops": float(cells[5]),
        })
    return rows


def test_readme_neck_width_table_is_what_info_reports(cli):
    import json

    table = readme_neck_width_table()
    assert len(table) == 5 and sum(r["default"] for r in table) == 2
    for row in table:
        width = [] if row["default"] else ["--neck-width", row["width"]]  # the default rows test the default
        code, out, err = cli("info", "--backbone", row["backbone"], *width, "--num-classes", "80", "--json")
        assert code == 0, err
        info = json.loads(out)
        where = f"{row['backbone']} --neck-width {row['width']}"
        assert info["neck_channels"] == row["channels"], where
        assert round(info["parts"]["neck"]["params"] / 1e6, 1) == row["neck_m"], where
        assert round(info["params"] / 1e6, 1) == row["params_m"], where
        assert round(info["gflops"], 1) == row["gflops"], where
