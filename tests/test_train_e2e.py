"""Train → val → predict through the CLI on data the test makes, in each format; resume an interrupted run."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch

from tests.make_data import coco_set, ultralytics_set
from yoloswap.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # end-to-end: in the default run, deselect with -m 'not slow'

TINY = ["--backbone", "yolov5n", "--epochs", "1", "--img-size", "64", "--batch-size", "4", "--workers", "0",
        "--device", "cpu"]


@pytest.mark.parametrize("layout", ["ultralytics-list", "ultralytics-dict", "coco-sparse"])
def test_train_one_epoch_then_val_and_predict(cli, tmp_path, layout):
    if layout == "coco-sparse":
        data = coco_set(tmp_path / "data")
    else:
        data = ultralytics_set(tmp_path / "data", names_as_dict=layout.endswith("dict"))
    run = tmp_path / "run"
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(run))
    assert code == 0, err
    for name in ("config.yaml", "metrics.csv", "results.png", "weights/last.pt", "weights/best.pt"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1"] and rows[0]["metrics/mAP50-95"] != ""

    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["names"] == ["red", "green", "blue"]
    if layout == "coco-sparse":
        assert ckpt["category_ids"] == [3, 7, 11]

    code, out, err = cli("val", "--weights", str(run / "weights" / "best.pt"), "--data", str(data), "--json",
                         "--save-json", str(tmp_path / "preds.json"))
    assert code == 0, err
    metrics = json.loads(out)
    assert 0.0 <= metrics["map"] <= metrics["map50"] <= 1.0
    results = json.loads((tmp_path / "preds.json").read_text())
    if layout == "coco-sparse" and results:
        assert {r["category_id"] for r in results} <= {3, 7, 11}  # mapped back to the file's sparse ids

    images = data.parent / ("val" if layout == "coco-sparse" else "images/val")
    code, out, err = cli("predict", "--weights", str(run / "weights" / "last.pt"), "--source", str(images),
                         "--out", str(tmp_path / "pred"), "--conf", "0.001")
    assert code == 0, err
    records = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(records) == 3
    assert all({"image", "detections"} <= set(r) for r in records)
    assert len(list((tmp_path / "pred").glob("*.jpg"))) == 3


def test_an_existing_run_is_not_overwritten(cli, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(run))
    assert code == 1 and "already exists" in err and "--resume" not in err  # not a run: nothing to resume
    assert (run / "keep.txt").read_text() == "mine"


def test_interrupted_run_resumes_at_the_right_epoch_with_its_optimizer_state(cli, tmp_path, monkeypatch):
    import yoloswap.training.loop as trainer

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    real_epoch = trainer.train_one_epoch

    def dies_in_second_epoch(run_state, loader, loss_fn, epoch, console):
        if epoch == 1:
            raise KeyboardInterrupt  # the user pressed Ctrl-C (or the machine went away) during epoch 2
        return real_epoch(run_state, loader, loss_fn, epoch, console)

    monkeypatch.setattr(trainer, "train_one_epoch", dies_in_second_epoch)
    args = [a if a != "1" else "3" for a in TINY]  # 3 epochs
    code, _, _ = cli("train", *args, "--data", str(data), "--out", str(run))
    assert code == 130
    saved = load_checkpoint(run / "weights" / "last.pt")
    assert saved["epoch"] == 0  # the last completed epoch (0-based) survived the interruption

    seen = {}

    def records_state(run_state, loader, loss_fn, epoch, console):
        if "epoch" not in seen:
            seen["epoch"] = epoch
            seen["optimizer"] = copy.deepcopy(run_state.optimizer.state_dict())  # before this epoch changes it
        return real_epoch(run_state, loader, loss_fn, epoch, console)

    monkeypatch.setattr(trainer, "train_one_epoch", records_state)
    code, _, err = cli("train", "--resume", str(run), "--workers", "0", "--device", "cpu")
    assert code == 0, err
    assert seen["epoch"] == 1  # continued with the second epoch, not from scratch
    before, after = saved["optimizer"], seen["optimizer"]
    assert before["param_groups"] == after["param_groups"]
    assert before["state"].keys() == after["state"].keys() and before["state"]
    for k in before["state"]:
        for name, value in before["state"][k].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after["state"][k][name])), (k, name)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 2


def test_resume_of_a_finished_run_says_so(cli, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    assert cli("train", *TINY, "--data", str(data), "--out", str(run))[0] == 0
    code, _, err = cli("train", "--resume", str(run), "--workers", "0")
    assert code == 1 and "already finished" in err


def test_torchrun_with_two_processes_and_frozen_stages(tmp_path):
    """The same code path under DDP (gloo on CPU): no unused-parameter error with frozen stages, one run folder."""
    import os
    import subprocess
    import sys

    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=8)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "yoloswap", "train", *TINY, "--data", str(data), "--out", str(run), "--frozen-stages", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "weights" / "last.pt").is_file()
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--epochs", "0"], "--epochs: must be at least 1"),
        (["--img-size", "100"], "--img-size: must be a positive multiple of 32"),
        (["--data", "/no/such/data.yaml"], "data YAML not found"),
        (["--device", "meta"], "cannot train"),
    ],
)
def test_bad_training_options_stop_with_one_line(cli, tmp_path, args, message):
    code, _, err = cli("train", "--backbone", "yolov5n", "--out", str(tmp_path / "run"), *args)
    assert code != 0 and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # a failed start leaves no empty run folder


def test_a_malformed_label_line_stops_before_training_with_file_and_line(cli, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    (tmp_path / "data" / "labels" / "train" / "2.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 1.7 0.2\n")
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(tmp_path / "run"))
    assert code == 1 and "2.txt:2:" in err
    assert not (tmp_path / "run" / "weights" / "last.pt").exists()


def test_fine_tuning_from_a_yoloswap_checkpoint_starts_from_its_weights(cli, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    first = tmp_path / "first"
    assert cli("train", *TINY, "--data", str(data), "--out", str(first))[0] == 0
    assert (first / "val_predictions.png").is_file()  # a few validation images with predicted boxes
    source = load_checkpoint(first / "weights" / "last.pt")["ema"]
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(tmp_path / "second"),
                       "--weights", str(first / "weights" / "last.pt"), "--lr", "1e-12", "--no-ema")
    assert code == 0, err
    assert "detector tensors from" in err
    tuned = load_checkpoint(tmp_path / "second" / "weights" / "last.pt")["model"]
    key = "head.convs.0.weight" if "head.convs.0.weight" in tuned else next(k for k in tuned if k.startswith("head."))
    assert torch.allclose(tuned[key], source[key], atol=1e-4)  # lr ~0: still the first run's weights


def test_a_detector_file_as_weights_decides_the_architecture_and_another_backbone_is_refused(cli, tmp_path):
    """``--weights best.pt`` alone fine-tunes the detector in the file (as ``yolo train model=best.pt``), not the
    ``--backbone`` default; naming another backbone beside it is a one-line usage error."""
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    first = tmp_path / "first"
    assert cli("train", *TINY, "--data", str(data), "--out", str(first))[0] == 0  # a yolov5n detector
    weights = str(first / "weights" / "last.pt")
    no_backbone = [a for i, a in enumerate(TINY) if "--backbone" not in TINY[max(i - 1, 0):i + 1]]
    code, _, err = cli("train", *no_backbone, "--data", str(data), "--out", str(tmp_path / "second"),
                       "--weights", weights)
    assert code == 0, err
    assert "yoloswap yolov5n detector" in " ".join(err.split())
    ckpt = load_checkpoint(tmp_path / "second" / "weights" / "last.pt")
    assert ckpt["config"]["options"]["backbone"] == "yolov5n"
    assert "detector tensors from" in err and "re-initialised" not in err  # every tensor came from the file

    code, _, err = cli("train", *no_backbone, "--backbone", "yolov5m", "--data", str(data),
                       "--out", str(tmp_path / "third"), "--weights", weights)
    error = err.strip().splitlines()[-1]  # after the data line, one error line
    assert code == 2 and error.startswith("Error:") and "yolov5n detector" in error and "--backbone yolov5m" in error
    assert not (tmp_path / "third").exists()


def test_a_non_finite_loss_stops_the_run_with_a_message(cli, tmp_path, monkeypatch):
    import yoloswap.losses as losses

    real_call = losses.YOLOv5Loss.__call__

    def nan_loss(self, outputs, targets):
        loss, items = real_call(self, outputs, targets)
        return loss * float("nan"), items

    monkeypatch.setattr(losses.YOLOv5Loss, "__call__", nan_loss)
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(tmp_path / "run"))
    assert code == 1
    assert "loss became nan" in err and "stopping" in err
