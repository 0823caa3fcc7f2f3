"""``--resume`` continues a run as if it had never stopped: a run interrupted after epoch 1 and resumed ends with
the same weights, EMA, optimizer and scaler state, best fitness and random streams as the run left alone.

Each epoch is one batch of four copies of one image, without augmentation, so that neither the data order nor the
augmentation stream matters: those two are not part of what resume restores (the loader is seeded afresh).
Tolerance: 1e-6 absolute on every tensor.
"""

from __future__ import annotations

import io
import random
import shutil

import numpy as np
import pytest
import torch
from rich.console import Console

import yoloswap.training.loop as trainer
from tests.make_data import ultralytics_set
from yoloswap.data.transforms import AugmentConfig
from yoloswap.checkpoint import load_checkpoint
from yoloswap.config.options import TrainOptions

pytestmark = pytest.mark.slow

NO_AUGMENT = AugmentConfig(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0, fliplr=0.0, mosaic=0.0)
# Scripted validation scores per epoch: epoch 1 is the best, so best.pt and best_fitness must stay on it.
MAP_BY_EPOCH = [0.5, 0.2]
ATOL = 1e-6


class Timeline:
    """One sequence of epochs (possibly over two processes' worth of ``train`` calls): what it drew at the start
    of each epoch from the global random generators, and how many validations it ran."""

    def __init__(self, crash_at_epoch: int | None = None) -> None:
        self.draws: list[tuple[float, float, float]] = []
        self.validations = 0
        self.crash_at_epoch = crash_at_epoch


def install_hooks(monkeypatch, timeline_ref: list[Timeline]) -> None:
    real_epoch, real_evaluate = trainer.train_one_epoch, trainer.evaluate
    real_scaler = torch.amp.GradScaler

    def epoch(*args, **kwargs):
        t = timeline_ref[0]
        if t.crash_at_epoch is not None and len(t.draws) + 1 == t.crash_at_epoch:
            raise KeyboardInterrupt  # Ctrl-C (or the machine went away) during this epoch
        # Something random in the epoch (drop path, a random user hook): it reads the global generators.
        t.draws.append((torch.rand(1).item(), float(np.random.rand()), random.random()))
        return real_epoch(*args, **kwargs)

    def evaluate(*args, **kwargs):
        t = timeline_ref[0]
        out = real_evaluate(*args, **kwargs)
        out.metrics.update(map=MAP_BY_EPOCH[t.validations], map50=MAP_BY_EPOCH[t.validations])
        t.validations += 1
        return out

    def scaler(*args, **kwargs):
        # A live loss scaler on the CPU (fp32 maths, so the scale is exact): its scale doubles after every step.
        return real_scaler("cpu", init_scale=256.0, growth_interval=1)

    monkeypatch.setattr(trainer, "train_one_epoch", epoch)
    monkeypatch.setattr(trainer, "evaluate", evaluate)
    monkeypatch.setattr(torch.amp, "GradScaler", scaler)


def assert_close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if a.dtype.is_floating_point:
            assert torch.allclose(a, b, rtol=0, atol=ATOL), f"{where}: max diff {(a - b).abs().max().item()}"
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=ATOL), where
    else:
        assert a == b, where


def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(tmp_path, monkeypatch):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=1)
    for i in (1, 2, 3):  # four copies of one image: the order inside the batch cannot matter
        shutil.copy(tmp_path / "data/images/train/0.png", tmp_path / f"data/images/train/{i}.png")
        shutil.copy(tmp_path / "data/labels/train/0.txt", tmp_path / f"data/labels/train/{i}.txt")
    options = TrainOptions(backbone="yolov5n", data=str(data), epochs=2, img_size=64, batch_size=4, nominal_batch=4,
                           workers=0, device="cpu", amp=False, augment=NO_AUGMENT)
    console = Console(file=io.StringIO())
    current: list[Timeline] = [Timeline()]
    install_hooks(monkeypatch, current)

    straight = current[0]
    trainer.train(options, out=tmp_path / "straight", console=console)

    interrupted = current[0] = Timeline(crash_at_epoch=2)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(options, out=tmp_path / "resumed", console=console)
    assert load_checkpoint(tmp_path / "resumed" / "weights" / "last.pt")["epoch"] == 0
    resumed = current[0] = Timeline()
    trainer.train(TrainOptions(device="cpu", workers=0), resume=tmp_path / "resumed", console=console)

    # The random streams continue where they were: epoch 2 draws what the uninterrupted run drew.
    assert interrupted.draws == straight.draws[:1]
    assert resumed.draws == straight.draws[1:]

    a = load_checkpoint(tmp_path / "straight" / "weights" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "weights" / "last.pt")
    assert a["epoch"] == b["epoch"] == 1
    assert a["scaler"] and a["scaler"]["scale"] == 256.0 * 4  # the scaler was live: 2 steps, doubled twice
    for key in ("model", "ema", "ema_updates", "optimizer", "scaler", "best_fitness"):
        assert_close(a[key], b[key], key)
    # Epoch 1 stays the best (0.9·0.5 + 0.1·0.5), in the resumed run too.
    assert b["best_fitness"] == pytest.approx(0.5)
    assert load_checkpoint(tmp_path / "resumed" / "weights" / "best.pt")["epoch"] == 0
    assert load_checkpoint(tmp_path / "straight" / "weights" / "best.pt")["epoch"] == 0
