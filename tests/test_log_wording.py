"""The words a new user reads in a training log and in ``val --json``: each said once, and true for the run."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from tests.make_data import ultralytics_set
from tests.test_export import write_checkpoint
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.sources import build_backbone
from yoloswap.config.options import TrainOptions
from yoloswap.training.messages import log_plan
from yoloswap.training.setup import _load_initial_weights


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """yolov5n's preset pointing at a backbone state dict on disk: a run that loads pretrained weights."""
    preset = resolve_backbone("yolov5n")
    path = tmp_path_factory.mktemp("weights") / "backbone.pth"
    torch.save(build_backbone(preset).body.state_dict(), path)
    return dataclasses.replace(preset, weights=str(path))


def test_the_weights_line_says_weights_once(pretrained):
    lines = []
    report = _load_initial_weights(SimpleNamespace(backbone=build_backbone(pretrained)), pretrained,
                                   TrainOptions(backbone="yolov5n"), None, lines.append)
    assert report is not None and report.loaded == report.total
    assert len(lines) == 1 and lines[0].startswith("weights: loaded ") and "weights: weights:" not in lines[0]


@pytest.mark.parametrize("loaded", [True, False])
def test_the_plan_of_a_short_run_speaks_of_scratch_only_when_nothing_was_loaded(pretrained, loaded):
    preset = pretrained if loaded else dataclasses.replace(pretrained, weights="none")
    lines = []
    log_plan(SimpleNamespace(options=TrainOptions(backbone="yolov5n", data="d.yaml", epochs=2), preset=preset,
                             start_epoch=0), lines.append)
    assert len(lines) == 1 and lines[0].startswith("plan: 2 epochs") and "few epochs" in lines[0]
    assert ("from scratch" in lines[0]) is not loaded
    assert ("pretrained weights" in lines[0]) is loaded


def test_val_json_gives_per_class_figures_once_as_the_classes_rows(cli, tmp_path):
    weights, _ = write_checkpoint(tmp_path / "best.pt")
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=1, n_val=2)
    code, out, err = cli("val", "--weights", str(weights), "--data", str(data), "--json", "--workers", "0",
                         "--device", "cpu")
    assert code == 0, err
    result = json.loads(out)
    assert "per_class" not in result
    assert [row["class"] for row in result["classes"]] == ["red", "green", "blue", "all"]
    assert {"ap50", "ap50_95", "precision", "recall"} <= set(result["classes"][0])
