"""`val` and `predict` know their run: its data set and image size come from the checkpoint, and they say what
they scored; the messages around an existing run folder suggest only what works."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.make_data import ultralytics_set
from yoloswap.cli.app import main

TINY = ["--backbone", "yolov5n", "--epochs", "1", "--img-size", "64", "--batch-size", "4", "--workers", "0",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on a user's 3-class data set (not the built-in 6-class one)."""
    root = tmp_path_factory.mktemp("valdefaults")
    data = ultralytics_set(root / "data", names_as_dict=False)
    run = root / "run"
    assert main(["train", *TINY, "--data", str(data), "--out", str(run)]) == 0
    return data, run


@pytest.mark.slow
def test_val_without_data_scores_the_runs_own_validation_split(cli, trained):
    data, run = trained
    code, out, err = cli("val", "--weights", str(run / "weights" / "best.pt"), "--json", "--workers", "0")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["data"] == str(data.resolve()) and metrics["split"] == "val"
    assert metrics["images"] == 3 and metrics["img_size"] == 64  # the set's 3 val images, at the training size
    code, explicit, err = cli("val", "--weights", str(run / "weights" / "best.pt"), "--json", "--workers", "0",
                              "--data", str(data))
    assert code == 0, err
    assert json.loads(explicit)["map"] == metrics["map"]

    code, out, _ = cli("val", "--weights", str(run / "weights" / "best.pt"), "--workers", "0")
    assert code == 0 and f"on {data.resolve()} val (3 images at 64 px)" in out.replace("\n", "")


@pytest.mark.slow
def test_a_data_set_with_other_classes_is_refused_with_the_fix(cli, trained, tmp_path):
    data, run = trained
    other = yaml.safe_load(data.read_text())
    other["names"] = ["a", "b", "c", "d"]
    (tmp_path / "four.yaml").write_text(yaml.safe_dump(other))
    code, _, err = cli("val", "--weights", str(run / "weights" / "best.pt"), "--data", str(tmp_path / "four.yaml"))
    assert code == 1
    assert "4 classes, but" in err and "trained for 3" in err and "pass --data" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_val_says_pass_data_when_the_runs_data_is_gone(cli, trained, tmp_path, monkeypatch):
    _, run = trained
    import yoloswap.foreign_detector as reader  # every runtime reads a .pt through it (yoloswap's or a YOLO file)

    real = reader.read_detector_file

    def moved(path, *a, **k):
        ckpt = real(path, *a, **k)
        ckpt["config"]["options"]["data"] = str(tmp_path / "gone" / "data.yaml")
        return ckpt

    monkeypatch.setattr(reader, "read_detector_file", moved)
    code, _, err = cli("val", "--weights", str(run / "weights" / "best.pt"))
    assert code == 1 and "gone/data.yaml, which is not found from here; pass --data" in err


@pytest.mark.slow
def test_predict_uses_the_training_size_and_says_so(cli, trained, tmp_path):
    data, run = trained
    code, out, err = cli("predict", "--weights", str(run / "weights" / "best.pt"), "--source",
                         str(data.parent / "images" / "val"), "--out", str(tmp_path / "pred"), "--device", "cpu")
    assert code == 0, err
    assert "in 3 images at 64 px" in out


@pytest.mark.slow
def test_out_on_a_finished_run_suggests_extending_it_not_resuming_it(cli, trained):
    data, run = trained
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(run))
    assert code == 1
    assert "already exists" in err and "finished run" in err and "--exist-ok" in err
    assert f"--resume {run} --epochs N" in " ".join(err.split())  # what works on a finished run
