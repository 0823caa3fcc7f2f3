"""Checkpoint IO: atomic saves, safe loads, clear errors, and RNG state that resumes the same random stream."""

from __future__ import annotations

import os
import pathlib
import pickle
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from yoloswap import checkpoint as ckpt_module
from yoloswap.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from yoloswap.errors import CheckpointError


def sample_checkpoint() -> dict:
    return {
        "epoch": 3,
        "best_fitness": 0.25,
        "config": {"name": "yolov5s", "imgsz": 64, "names": ["a", "b"], "resume": None, "amp": True},
        "model": {"conv.weight": torch.randn(4, 3, 3, 3), "bn.num_batches_tracked": torch.tensor(7)},
        "history": [(1, 0.1), (2, 0.2)],
        "dtype": torch.float16,
    }


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def test_round_trip_creates_parent_folders(tmp_path):
    obj = sample_checkpoint()
    path = tmp_path / "run" / "weights" / "last.pt"
    save_checkpoint(obj, path)
    assert_same(load_checkpoint(path), obj)
    # Nothing but the checkpoint is left behind.
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_safetensors_round_trip(tmp_path):
    tensors = {"a.weight": torch.randn(2, 3), "a.bias": torch.zeros(2)}
    path = tmp_path / "model.safetensors"
    save_checkpoint(tensors, path)
    assert_same(load_checkpoint(path), tensors)


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(ckpt_module.torch, "save", crash)  # dies while writing
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()

    monkeypatch.setattr(ckpt_module.os, "replace", crash)  # dies after writing, before the rename
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()

    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary files left


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.5, 0.05, 0.0])
def test_truncated_file_is_reported_as_corrupt(tmp_path, keep):
    path = tmp_path / "last.pt"
    save_checkpoint(sample_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"last\.pt is corrupt or truncated"):
        load_checkpoint(path)


def test_random_bytes_are_reported_as_corrupt(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


class Payload:
    """Unpickling this creates a marker file: the kind of code a hostile checkpoint would run."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on pickle.dump's protocol
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    obj = {"model": {"w": torch.ones(1)}, "payload": Payload(marker)}
    if writer == "torch.save":
        torch.save(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="arbitrary unpickling.*refuses for safety"):
        load_checkpoint(path)
    assert not marker.exists()


@dataclass
class Opaque:
    x: int = 1


@pytest.mark.parametrize("bad", [Opaque(), np.zeros(3), np.float64(1.0), {"k": [1, Opaque()]}])
def test_save_refuses_values_that_could_not_be_loaded_back(tmp_path, bad):
    path = tmp_path / "last.pt"
    with pytest.raises(TypeError, match=r"checkpoint\['bad'\]"):
        save_checkpoint({"bad": bad}, path)
    assert not path.exists()


def draw() -> tuple:
    return random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_rng_state_round_trip_reproduces_the_random_stream(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's generator state
    np.random.standard_normal()
    path = tmp_path / "last.pt"
    save_checkpoint({"rng": rng_state()}, path)
    expected = draw()

    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    assert draw() != expected

    set_rng_state(load_checkpoint(path)["rng"])
    assert draw() == expected


def test_load_returns_tensors_on_cpu_by_default(tmp_path):
    path = tmp_path / "w.pt"
    save_checkpoint({"w": torch.ones(2)}, path)
    assert load_checkpoint(path)["w"].device.type == "cpu"
    assert os.path.getsize(path) > 0
