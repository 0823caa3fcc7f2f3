"""The inspecting commands as a user meets them: tables, JSON on stdout, one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch


def test_list_backbones_table_and_json(cli):
    code, out, _ = cli("list-backbones")
    assert code == 0
    for name in ("resnet50", "swin-tiny", "convnext-tiny", "mobilenetv3-small", "efficientnet-b1", "mocov3-resnet50"):
        assert name in out
    assert "24/48/96" in out and "timm:NAME" in out
    code, out, _ = cli("list-backbones", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["efficientnet-b1"]["channels"] == [40, 112, 320]
    assert rows["resnet50"]["strides"] == [8, 16, 32]


def test_probe_one_backbone_json_schema(cli):
    code, out, err = cli("probe-channels", "--backbone", "mobilenetv3-small", "--device", "cpu", "--img-size", "320", "--json")
    assert code == 0
    data = json.loads(out)  # stdout holds only the JSON; progress went to stderr
    assert data["backbone"] == "mobilenetv3-small"
    assert data["channels"] == [24, 48, 96] and data["strides"] == [8, 16, 32]
    assert data["shapes"] == [[1, 24, 40, 40], [1, 48, 20, 20], [1, 96, 10, 10]]
    assert isinstance(data["params"], int) and data["device"] == "cpu" and data["seconds"] > 0


def test_probe_all_presets_on_meta_is_a_list(cli):
    code, out, _ = cli("probe-channels", "--device", "meta", "--json")
    assert code == 0
    data = json.loads(out)
    assert isinstance(data, list) and len(data) >= 6
    assert all({"backbone", "channels", "strides", "shapes", "params", "device", "seconds"} <= set(d) for d in data)
    assert {d["device"] for d in data} == {"meta"}


def test_probe_table(cli):
    code, out, _ = cli("probe-channels", "-b", "timm:resnet18", "--device", "meta")
    assert code == 0 and "128" in out and "512" in out and "P5" in out


def test_unknown_backbone_exit_code_and_message(cli):
    code, out, err = cli("probe-channels", "--backbone", "convnxt-tiny")
    assert code == 2
    assert err.strip() == "Error: unknown backbone 'convnxt-tiny'; did you mean 'convnext-tiny'?"
    assert "Traceback" not in err and out == ""


def test_malformed_preset_names_file_and_field(cli, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("family: x\ndescription: y\nmodel: {source: timm, name: resnet18}\nnorm_evl: true\n")
    code, _, err = cli("probe-channels", "--backbone", str(path), "--device", "meta")
    assert code == 1
    assert "broken.yaml" in err and "norm_evl" in err and "norm_eval" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_says_so(cli):
    code, _, err = cli("probe-channels", "--backbone", "resnet50", "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err


def test_vit_refused_on_the_command_line(cli):
    code, _, err = cli("probe-channels", "--backbone", "timm:vit_tiny_patch16_224", "--device", "meta")
    assert code == 2 and "strides [16]" in err


def test_console_script_entry_points_run_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "yoloswap", "probe-channels", "-b", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: unknown backbone 'nope'")
    assert "Traceback" not in proc.stderr


def test_list_all_backbones_reads_the_shipped_sweep(cli):
    code, out, _ = cli("list-backbones", "--all", "--source", "torchvision", "--filter", "regnet_y_4*", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["backbone"] for r in rows] == ["torchvision:regnet_y_400mf"]
    assert rows[0]["status"] == "ok" and rows[0]["measured_with"].startswith("torchvision ")
    assert "channels" not in rows[0]  # channels are measured on demand, not read from the table
    code, out, _ = cli("list-backbones", "--all", "--filter", "torchvision:vit_b_16")
    assert code == 0 and "refused" in out and "one stride only" in out


def test_list_all_backbones_probes_channels_on_demand(cli):
    code, out, _ = cli("list-backbones", "--all", "--source", "timm", "--filter", "resnet18", "--probe", "--json")
    assert code == 0
    assert json.loads(out)[0]["channels"] == [128, 256, 512]


def test_list_all_backbones_unknown_source_suggests(cli):
    code, out, err = cli("list-backbones", "--all", "--source", "tim")
    assert code == 2 and out == ""
    assert err.strip() == "Error: unknown backbone source 'tim' (sources: timm, torchvision, yoloswap); did you mean 'timm'?"
