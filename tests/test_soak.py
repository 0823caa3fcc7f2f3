"""Kill -9 a training run mid-save and mid-epoch, resume it each time: nothing acknowledged is lost, no epoch is
logged twice, and the result equals an uninterrupted run of the same seed (CPU, --workers 0). bench/soak.py does
the same with 20 kills."""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.make_data import ultralytics_set
from yoloswap.checkpoint import load_checkpoint

EPOCHS = 3
COMMON = ["--workers", "0", "--device", "cpu"]


def recipe(data: Path) -> list[str]:
    return ["--backbone", "yolov5n", "--data", str(data), "--epochs", str(EPOCHS), "--img-size", "64",
            "--batch-size", "2", "--nominal-batch", "2", "--seed", "3", *COMMON]  # fmt: skip


def start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "yoloswap", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))  # fmt: skip


def kill_when(proc: subprocess.Popen, ready, timeout_s: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (polled every 2 ms); fails if the run ends first."""
    end = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, "the run ended before the kill"
        assert time.monotonic() < end, "the moment never came"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def epochs_logged(run: Path) -> list[int]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [int(row["epoch"]) for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_kill_9_mid_save_and_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=2)
    run, weights = tmp_path / "run", tmp_path / "run" / "weights"

    # 1. killed while the second epoch's checkpoint is being written (its temp file exists): epoch 1 is safe
    proc = start([*recipe(data), "--out", str(run)], tmp_path / "1.log")
    kill_when(proc, lambda: (weights / "last.pt").exists() and any(weights.glob(".last.pt.*.tmp")))
    assert load_checkpoint(weights / "last.pt")["epoch"] == 0 and load_checkpoint(weights / "best.pt")
    assert epochs_logged(run) == [1, 2]  # epoch 2's row was written, its checkpoint was not

    # 2. resumed, then killed at a random moment of the next epoch (a training step, validation or the save)
    proc = start(["--resume", str(run), *COMMON], tmp_path / "2.log")
    kill_when(proc, lambda: "run folder:" in (tmp_path / "2.log").read_text())
    time.sleep(random.Random(0).uniform(0.0, 2.0))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert load_checkpoint(weights / "last.pt")["epoch"] in (0, 1, 2)

    # 3. resumed to the end (unless the kill came after the last save)
    if load_checkpoint(weights / "last.pt")["epoch"] < EPOCHS - 1:
        assert start(["--resume", str(run), *COMMON], tmp_path / "3.log").wait() == 0, (tmp_path / "3.log").read_text()
    assert epochs_logged(run) == [1, 2, 3]
    final = load_checkpoint(weights / "last.pt")
    assert final["epoch"] == EPOCHS - 1 and load_checkpoint(weights / "best.pt")["format"] == final["format"]
    assert not list(weights.glob(".*.tmp"))  # what the killed saves left was cleaned up

    # the same recipe, never interrupted: bit-identical weights and EMA
    log = tmp_path / "reference.log"
    assert start([*recipe(data), "--out", str(tmp_path / "reference")], log).wait() == 0, log.read_text()
    reference = load_checkpoint(tmp_path / "reference" / "weights" / "last.pt")
    for key in ("model", "ema"):
        different = [k for k, v in final[key].items() if not torch.equal(v, reference[key][k])]
        assert different == [], f"{key}: {len(different)} tensors differ, e.g. {different[:3]}"
