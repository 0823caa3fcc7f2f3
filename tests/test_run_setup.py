"""What a run decides before its first batch: the AMP dtype, the run folder, and how many epochs fit --time."""

from __future__ import annotations

import os

import pytest
import torch

from yoloswap.training import precision
from yoloswap.training.precision import amp_dtype_for
from yoloswap.training.loop import claim_run_dir, fit_epochs_to_time, new_run_dir
from yoloswap.errors import TrainingError

CUDA = torch.device("cuda")


@pytest.mark.parametrize("bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_amp_uses_bf16_where_the_gpu_has_it_else_fp16(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert amp_dtype_for(CUDA, enabled=True) is expected
    assert amp_dtype_for(torch.device("cuda", 0), enabled=True) is expected


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_a_cpu_trains_in_bf16_only_where_it_computes_bf16_natively(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert amp_dtype_for(torch.device("cpu"), enabled=True) is expected  # else fp32: emulated bf16 is slower


def test_no_amp_when_switched_off(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert amp_dtype_for(CUDA, enabled=False) is None  # --no-amp
    assert amp_dtype_for(torch.device("cpu"), enabled=False) is None


def test_bf16_autocast_on_the_cpu_runs_convolutions_in_bf16():
    from yoloswap.training.precision import autocast_for

    conv = torch.nn.Conv2d(3, 4, 3)
    with autocast_for(torch.device("cpu"), torch.bfloat16):
        assert conv(torch.zeros(1, 3, 8, 8)).dtype == torch.bfloat16
    with autocast_for(torch.device("cpu"), None):
        assert conv(torch.zeros(1, 3, 8, 8)).dtype == torch.float32


def test_run_folders_are_numbered_exp_exp2_exp3(tmp_path):
    base = tmp_path / "runs" / "train"
    first = new_run_dir(base)
    assert first == base / "exp"
    claim_run_dir(first, exist_ok=False)
    second = new_run_dir(base)
    assert second == base / "exp2"
    claim_run_dir(second, exist_ok=False)
    assert new_run_dir(base) == base / "exp3"
    assert new_run_dir(base, name="ablation") == base / "ablation"
    assert (first / "weights").is_dir() and (second / "weights").is_dir()


def test_an_existing_run_is_kept_unless_exist_ok(tmp_path):
    out = tmp_path / "run"
    (out / "weights").mkdir(parents=True)
    (out / "weights" / "last.pt").write_bytes(b"an earlier run")
    with pytest.raises(TrainingError, match="already exists.*--exist-ok"):
        claim_run_dir(out, exist_ok=False)
    assert claim_run_dir(out, exist_ok=True) == out  # the user asked to reuse it
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_run_dir(empty, exist_ok=False) == empty  # an empty folder holds no run to lose
    assert (empty / "weights").is_dir()


@pytest.mark.parametrize(
    "budget, spent, done_here, epoch, epochs, expected",
    [
        (600, 120, 2, 2, 30, 10),  # 60 s per epoch, 480 s left: 8 more
        (600, 130, 2, 2, 30, 9),  # 65 s per epoch, 470 s left: 7 whole epochs more, not 7.2
        (60, 106, 1, 1, 30, 1),  # budget already spent: stop after this epoch
        (600, 100, 2, 5, 30, 15),  # resumed at epoch 3: the pace counts the 2 epochs run here, 50 s each
    ],
)
def test_time_budget_fits_whole_epochs_at_the_pace_so_far(budget, spent, done_here, epoch, epochs, expected):
    assert fit_epochs_to_time(budget, spent, done_here, epoch, epochs) == expected


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_workers_follow_the_cpus_the_process_is_pinned_to_not_the_machine(monkeypatch):
    from yoloswap.config.options import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})  # `taskset -c 0` on a 16-CPU machine
    assert default_workers() == 1  # not 8 workers and the training loop sharing one core
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    assert default_workers() == 4 and default_workers(processes_per_machine=2) == 2
