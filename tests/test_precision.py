"""The arithmetic a CPU run trains in is measured for its model, kept when faster, and remembered; measuring
changes nothing about the run."""

from __future__ import annotations

import pytest
import torch
import yaml

from tests.make_data import ultralytics_set
from yoloswap.training import precision
from yoloswap.training.precision import cpu_precision, seconds_per_step

MODEL = {"model": {"source": "yoloswap", "name": "cspdarknet"}, "plan": {"neck": [16, 32, 64]}}


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch):
    """Measurements of other tests' runs are remembered in the session's home; these tests start with none."""
    monkeypatch.setenv("YOLOSWAP_HOME", str(tmp_path / "home"))


def fake_timings(monkeypatch, fp32_s: float, bf16_s: float) -> list:
    calls = []

    def timed(model, batch, size, device, dtype, timed=1):
        calls.append(dtype)
        return bf16_s if dtype == torch.bfloat16 else fp32_s

    monkeypatch.setattr(precision, "seconds_per_step", timed)
    return calls


@pytest.mark.parametrize("fp32_s, bf16_s, expected", [(2.7, 1.1, torch.bfloat16), (0.11, 0.15, None),
                                                      (0.79, 0.73, None)])
def test_the_faster_arithmetic_is_kept(monkeypatch, fp32_s, bf16_s, expected):
    """ConvNeXt-like (bf16 2.4x faster) keeps bf16; MobileNet-like (bf16 slower: depthwise convolutions) fp32; a
    gain within the noise of two timed steps (EfficientNet-B1: 0.92x measured carefully) fp32 too."""
    fake_timings(monkeypatch, fp32_s, bf16_s)
    said = []
    assert cpu_precision(torch.nn.Identity(), MODEL, 16, 224, said.append) is expected
    assert "remembered" in said[0] and f"{bf16_s:.2f} s in bf16" in said[0]


def test_a_measurement_is_remembered_per_model_batch_and_size(monkeypatch):
    calls = fake_timings(monkeypatch, 2.0, 1.0)
    model = MODEL
    assert cpu_precision(torch.nn.Identity(), model, 16, 224, lambda _: None) is torch.bfloat16
    assert len(calls) == 2
    fake_timings(monkeypatch, 1.0, 2.0)  # the machine "changed its mind": the remembered answer stands
    assert cpu_precision(torch.nn.Identity(), model, 16, 224, lambda _: None) is torch.bfloat16
    assert cpu_precision(torch.nn.Identity(), model, 8, 224, lambda _: None) is None  # another batch: measured


class Levels(torch.nn.Module):
    """A module returning a one-element list, as a detector returns its levels."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5))

    def forward(self, x):
        return [self.body(x)]


def test_measuring_a_step_leaves_weights_statistics_mode_and_random_stream_untouched():
    torch.manual_seed(0)
    model = Levels().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    seconds_per_step(model, 2, 32, torch.device("cpu"), torch.bfloat16)
    assert torch.equal(torch.get_rng_state(), rng)  # a run that measures trains like one that reads it back
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_a_cpu_run_records_its_arithmetic_in_config_yaml(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    fake_timings(monkeypatch, 0.1, 0.2)  # bf16 slower for this model: fp32
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    run = tmp_path / "run"
    code, _, err = cli("train", "--backbone", "yolov5n", "--data", str(data), "--epochs", "1", "--img-size", "64",
                       "--batch-size", "2", "--workers", "0", "--device", "cpu", "--out", str(run))
    assert code == 0, err
    assert "precision: fp32" in err
    assert yaml.safe_load((run / "config.yaml").read_text())["precision"] == "fp32"


def test_a_resumed_run_continues_in_the_arithmetic_it_started_in(cli, tmp_path, monkeypatch):
    """Even when the remembered measurement is gone and a new one would choose otherwise (another machine)."""
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    fake_timings(monkeypatch, 0.2, 0.1)  # bf16 faster
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    run = tmp_path / "run"
    code, _, err = cli("train", "--backbone", "yolov5n", "--data", str(data), "--epochs", "1", "--img-size", "64",
                       "--batch-size", "2", "--workers", "0", "--device", "cpu", "--out", str(run))
    assert code == 0 and "precision: bf16" in err, err

    import shutil

    shutil.rmtree(tmp_path / "home" / "cpu-precision")
    fake_timings(monkeypatch, 0.1, 0.2)  # a new measurement would now pick fp32
    code, _, err = cli("train", "--resume", str(run), "--epochs", "2")
    assert code == 0, err
    assert "precision:" not in err  # not measured again
    assert yaml.safe_load((run / "config.yaml").read_text())["precision"] == "bf16"
