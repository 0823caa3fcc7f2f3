"""What a new user sees on a first run: progress when stderr is not a terminal, and a final mAP that `val` of
the same checkpoint reproduces."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.make_data import ultralytics_set

pytestmark = pytest.mark.slow  # end-to-end trains

TINY = ["--backbone", "yolov5n", "--batch-size", "2", "--workers", "0", "--device", "cpu"]
ROOT = Path(__file__).resolve().parents[1]


def test_a_run_piped_to_a_file_shows_progress_lines_at_least_every_ten_seconds(tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=16, size=128)
    env = dict(os.environ, YOLOSWAP_PROGRESS_S="0.2", PYTHONPATH=str(ROOT), COLUMNS="200")
    cmd = [sys.executable, "-m", "yoloswap", "train", *TINY, "--img-size", "128", "--epochs", "2", "--data", str(data),
           "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    stamped = [(time.monotonic(), line.rstrip("\n")) for line in proc.stderr]  # read as they come
    assert proc.wait() == 0, "\n".join(line for _, line in stamped)
    progress = [(t, line) for t, line in stamped if re.match(r"epoch \d/2  batch \d+/8  ", line)]
    assert progress, "no plain progress line:\n" + "\n".join(line for _, line in stamped)
    assert not any("\x1b[" in line or "\r" in line for _, line in stamped)  # no terminal bar redraws in a file
    with_stats = [line for _, line in progress if "img/s" in line]
    assert with_stats, [line for _, line in progress]
    assert all(" eta " in line and " lr " in line for line in with_stats)
    assert {line.split()[1] for _, line in progress} >= {"1/2", "2/2"}
    text = "\n".join(line for _, line in stamped)
    assert "plan: 2 epochs" in text and "few epochs" in text  # said before training: 2 epochs learn little
    assert re.search(r"the first epoch took \d+ s; the 1 epoch left take", text)  # the time, once it is known
    assert "the detector does not detect well yet" in text and "--epochs" in text
    gaps = [b - a for (a, _), (b, _) in zip(stamped, stamped[1:]) if a >= progress[0][0]]
    assert max(gaps, default=0.0) <= 10.0, gaps


def test_the_final_map_of_training_is_what_val_of_best_pt_reports(cli, tmp_path, monkeypatch):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=1)
    (data).write_text((data).read_text().replace("val: val.txt", "val: images/train"))  # scored on what it learns
    run = tmp_path / "run"
    # training steps in bf16 autocast (as on a CPU where it measures faster); evaluation is fp32 both times
    monkeypatch.setattr("yoloswap.training.setup.cpu_precision", lambda *args, **kwargs: torch.bfloat16)
    code, _, err = cli("train", *TINY, "--img-size", "64", "--epochs", "3", "--mosaic", "0", "--lr", "0.01", "--amp",
                       "--data", str(data), "--out", str(run))
    assert code == 0, err
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    best = max(rows, key=lambda r: 0.1 * float(r["metrics/mAP50"]) + 0.9 * float(r["metrics/mAP50-95"]))
    code, out, err = cli("val", "--weights", str(run / "weights" / "best.pt"), "--data", str(data), "--json")
    assert code == 0, err
    metrics = json.loads(out)
    # Barely trained, but not zero: hundreds of low-score boxes whose ranking, and so this 4-decimal mAP, moves
    # when the scoring arithmetic changes (bf16 scoring during training gave 0.0593 against val's 0.0600)
    assert metrics["map"] > 0 and metrics["map50"] > 0, metrics
    for key, column in (("map50", "metrics/mAP50"), ("map", "metrics/mAP50-95")):
        assert round(metrics[key], 4) == round(float(best[column]), 4)
        assert metrics[key] == pytest.approx(float(best[column]), rel=1e-5, abs=1e-9)  # metrics.csv keeps 6 digits


def test_the_end_of_a_run_says_plainly_whether_the_detector_detects():
    from yoloswap.config.options import DETECTS_MAP50
    from yoloswap.training.messages import verdict

    assert verdict(DETECTS_MAP50 + 0.01).startswith("the detector detects")
    low = verdict(0.05)
    assert low.startswith("the detector does not detect well yet") and "--epochs" in low and "pretrained" in low
    assert "not validated" in verdict(None)


def test_the_builtin_set_is_budgeted_by_epochs_so_a_slower_machine_trains_as_much():
    from yoloswap.config.options import BUILTIN_SET_DEFAULTS, TrainOptions

    builtin = TrainOptions.for_data(None, {})
    assert builtin.time is None and builtin.epochs == BUILTIN_SET_DEFAULTS["epochs"] >= 15


def test_the_time_left_is_said_after_the_first_epoch_and_again_at_the_second_epochs_pace():
    from yoloswap.training.messages import log_time_left

    said: list[str] = []
    log_time_left(said.append, 90.0, 15)
    log_time_left(said.append, 52.0, 14, first=False)  # the first epoch paid start-up costs the others do not
    assert said[0].startswith("the first epoch took 1 min 30 s; the 15 epochs left take about 22 min 30 s more")
    assert said[1].startswith("the second epoch, without start-up costs, took 52 s; the 14 epochs left take about "
                              "12 min 08 s more (done near ")
