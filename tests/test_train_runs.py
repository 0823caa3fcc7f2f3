"""What a run leaves behind: nothing after a failed start, a resumable last.pt and the resume command after
SIGTERM, a lean best.pt, and a config.yaml that tells the resolved optimizer."""

from __future__ import annotations

import os
import signal

import yaml

from tests.make_data import ultralytics_set
from yoloswap.checkpoint import load_checkpoint

TINY = ["--backbone", "yolov5n", "--img-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu"]


def test_a_start_that_fails_leaves_no_run_folder(cli, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(tmp_path / "run"), "--backbone", "resnet5O")
    assert code != 0 and "resnet5O" in err
    assert not (tmp_path / "run").exists()


def test_sigterm_stops_at_a_safe_point_keeps_last_pt_and_says_how_to_resume(cli, tmp_path, monkeypatch):
    import yoloswap.training.loop as trainer

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    real_epoch = trainer.train_one_epoch

    def preempted_in_second_epoch(run_state, loader, loss_fn, epoch, progress):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the scheduler wants the machine back
        return real_epoch(run_state, loader, loss_fn, epoch, progress)

    monkeypatch.setattr(trainer, "train_one_epoch", preempted_in_second_epoch)
    code, _, err = cli("train", *TINY, "--epochs", "3", "--data", str(data), "--out", str(run))
    assert code == 143, err
    assert "stopped by SIGTERM" in err and f"Resume with: yoloswap train --resume {run}" in err
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 0
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler, None) or callable(
        signal.getsignal(signal.SIGTERM))  # handler restored (whatever it was before)

    monkeypatch.setattr(trainer, "train_one_epoch", real_epoch)
    code, _, err = cli("train", "--resume", str(run), "--workers", "0", "--device", "cpu")
    assert code == 0, err
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 2


def test_best_pt_is_lean_and_config_yaml_records_the_resolved_optimizer(cli, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    code, _, err = cli("train", *TINY, "--epochs", "1", "--data", str(data), "--out", str(run))
    assert code == 0, err
    assert "optimizer: adamw lr 0.001429 (auto: 1 optimizer steps ≤ 10,000, a short run)" in err

    best, last = load_checkpoint(run / "weights" / "best.pt"), load_checkpoint(run / "weights" / "last.pt")
    assert {"optimizer", "ema", "scaler", "rng"}.isdisjoint(best) and {"optimizer", "ema", "rng"} <= set(last)
    assert best["model"].keys() == last["ema"].keys()
    assert all(best["model"][k].equal(last["ema"][k]) for k in best["model"])  # the EMA weights, once
    weights = sum(v.numel() * v.element_size() for v in best["model"].values())
    assert (run / "weights" / "best.pt").stat().st_size < weights + 200_000  # one copy plus metadata
    assert (run / "weights" / "last.pt").stat().st_size > 2 * weights

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["options"]["optimizer"] == "adamw" and config["options"]["lr"] == 0.001429
    assert config["optimizer_choice"].startswith("auto: 1 optimizer steps")


def test_config_yaml_tells_the_epochs_a_time_budget_left(cli, tmp_path):
    import csv

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    code, _, err = cli("train", *TINY, "--epochs", "3", "--time", "0.001", "--data", str(data), "--out", str(run))
    assert code == 0, err
    assert "--time 0.001 min: 1 epoch fits the budget (was 3); too few to learn to detect" in err
    assert [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())] == ["1"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["options"]["epochs"] == 1 and config["max_epochs"] == 3


def test_resume_with_epochs_extends_a_finished_run(cli, tmp_path):
    """`--resume RUN --epochs N` trains a finished run on to N epochs: same folder, the log continues, and asking
    for no more epochs than it has is a usage error (exit 2)."""
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    assert cli("train", *TINY, "--epochs", "1", "--data", str(data), "--out", str(run))[0] == 0
    code, _, err = cli("train", "--resume", str(run), "--device", "cpu", "--workers", "0")
    assert code == 1 and "already finished all 1 epochs" in err and "--epochs N" in err

    code, _, err = cli("train", "--resume", str(run), "--epochs", "2", "--device", "cpu", "--workers", "0")
    assert code == 0, err
    assert "extending" in err
    epochs = [row.split(",")[0] for row in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]
    last = load_checkpoint(run / "weights" / "last.pt")
    assert int(last["epoch"]) == 1 and last["config"]["options"]["epochs"] == 2

    code, _, err = cli("train", "--resume", str(run), "--epochs", "2", "--device", "cpu", "--workers", "0")
    assert code == 2 and "already trained 2 epochs" in err
