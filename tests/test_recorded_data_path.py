"""A run records where its data lives as an absolute path, whatever the user typed, and ``val``, ``predict`` and
``export`` find it again from any working folder: a data YAML or a data set folder (a VOC devkit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.make_data import ultralytics_set
from tests.test_voc import voc_devkit
from yoloswap.checkpoint import load_checkpoint

pytestmark = [pytest.mark.slow,  # end-to-end: train, then val / predict
              pytest.mark.filterwarnings("ignore::yoloswap.data.formats.DataWarning")]

TINY = ["--backbone", "yolov5n", "--epochs", "1", "--img-size", "64", "--batch-size", "2", "--workers", "0",
        "--device", "cpu", "--no-autoanchor"]


def test_val_scores_a_run_trained_on_a_voc_folder_without_data_from_another_folder(cli, tmp_path, monkeypatch):
    ids = ["000001", "000002", "000003"]
    voc_devkit(tmp_path / "work" / "VOCdevkit", "2007", {"trainval": ids[:2], "test": ids[2:]},
               {i: [("dog", 0, 5, 5, 40, 40), ("cat", 0, 30, 10, 60, 45)] for i in ids})
    monkeypatch.chdir(tmp_path / "work")
    code, _, err = cli("train", *TINY, "--data", "VOCdevkit/VOC2007", "--out", "run")
    assert code == 0, err
    kit = str(tmp_path / "work" / "VOCdevkit" / "VOC2007")
    assert load_checkpoint(tmp_path / "work" / "run" / "weights" / "best.pt")["config"]["options"]["data"] == kit

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, err = cli("val", "--weights", str(tmp_path / "work" / "run" / "weights" / "best.pt"), "--json")
    assert code == 0, err
    assert {"map", "map50"} <= set(json.loads(out))  # scored on the folder it was trained on


def test_a_relative_data_yaml_is_recorded_absolute_and_found_by_val_and_predict_elsewhere(cli, tmp_path, monkeypatch):
    ultralytics_set(tmp_path / "work" / "h2", names_as_dict=False, n_train=2, n_val=1)
    monkeypatch.chdir(tmp_path / "work")
    code, _, err = cli("train", *TINY, "--data", "h2/data.yaml", "--out", "run")
    assert code == 0, err
    absolute = str(tmp_path / "work" / "h2" / "data.yaml")
    assert yaml.safe_load((tmp_path / "work" / "run" / "config.yaml").read_text())["options"]["data"] == absolute
    weights = tmp_path / "work" / "run" / "weights" / "best.pt"
    assert load_checkpoint(weights)["config"]["options"]["data"] == absolute

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, err = cli("val", "--weights", str(weights), "--json")
    assert code == 0, err
    assert "not found from here" not in err
    image = tmp_path / "work" / "h2" / "images" / "val" / "0.png"
    code, out, err = cli("predict", "--weights", str(weights), "--source", str(image), "--out", "pred")
    assert code == 0, err
    assert (tmp_path / "elsewhere" / "pred").is_dir()
