"""The training loop on tiny data (64 px, yolov5n, CPU): what it does per batch and per epoch, by number.

Each run takes seconds. The loop is observed from outside: the checkpoint it writes, ``metrics.csv``, and counters
wrapped around the optimizer's ``step`` and the mosaic transform.
"""

from __future__ import annotations

import csv
import io

import pytest
import torch
from rich.console import Console

import yoloswap.data.transforms as transforms
import yoloswap.training.loop as trainer
from tests.make_data import ultralytics_set
from yoloswap.checkpoint import load_checkpoint
from yoloswap.config.options import TrainOptions

pytestmark = pytest.mark.slow


def tiny_options(data, **changes) -> TrainOptions:
    base = dict(backbone="yolov5n", data=str(data), epochs=1, img_size=64, batch_size=2, nominal_batch=2,
                workers=0, device="cpu", amp=False, optimizer="sgd")  # the preset's SGD recipe, named
    return TrainOptions(**(base | changes))


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def rows(run) -> list[dict]:
    return list(csv.DictReader((run / "metrics.csv").open()))


def count_calls(monkeypatch, owner, name: str) -> list[int]:
    """Wrap ``owner.name`` so that every call adds one to the returned counter."""
    calls = [0]
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_gradients_accumulate_to_the_nominal_batch_and_weight_decay_follows_it(tmp_path, monkeypatch):
    """batch 3, nominal batch 8: accumulate round(8/3) = 3 batches per optimizer step, so 18 images (6 batches)
    give 2 steps, and weight decay is scaled by 3·3/8 (YOLOv5: decay per image seen stays the preset's).
    Warmup is off here, so the count holds whether or not accumulation ramps up during warmup."""
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=18, n_val=1)
    steps = count_calls(monkeypatch, torch.optim.SGD, "step")
    run = tmp_path / "run"
    trainer.train(tiny_options(data, batch_size=3, nominal_batch=8, warmup_epochs=0.0), out=run, console=quiet())

    assert steps[0] == 2
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["ema_updates"] == 2  # the EMA moves once per optimizer step
    decays = {g["weight_decay"] for g in ckpt["optimizer"]["param_groups"]}
    assert sorted(decays) == pytest.approx([0.0, 0.0005 * 9 / 8])

    # The EMA follows the model: after 2 updates (memory ~0.1 %) its BatchNorm means sit on the model's, far from
    # the zeros they started at.
    means = [k for k in ckpt["model"] if k.endswith("running_mean")]
    assert means
    for key in means:
        model, ema = ckpt["model"][key], ckpt["ema"][key]
        assert ema.abs().max() > 0, key
        assert torch.allclose(ema, model, rtol=1e-2, atol=1e-4), key


def test_without_accumulation_every_batch_is_a_step(tmp_path, monkeypatch):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=6, n_val=1)
    steps = count_calls(monkeypatch, torch.optim.SGD, "step")
    trainer.train(tiny_options(data, batch_size=2, nominal_batch=2, warmup_epochs=0.0), out=tmp_path / "run",
                  console=quiet())
    assert steps[0] == 3


def test_mosaic_is_switched_off_for_the_last_epochs(tmp_path, monkeypatch):
    """4 epochs, --close-mosaic 1: every training image is a mosaic in epochs 1 to 3 (mosaic probability 1),
    none in epoch 4. (A run closes at most a quarter of its epochs: 3 epochs would keep mosaic throughout.)"""
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    mosaics = count_calls(monkeypatch, transforms, "mosaic4")
    per_epoch, flags = [], []
    real_epoch = trainer.train_one_epoch

    def watched(*args, **kwargs):
        loader = next(a for a in (*args, *kwargs.values()) if hasattr(a, "dataset"))
        flags.append(loader.dataset.mosaic_enabled)
        before = mosaics[0]
        result = real_epoch(*args, **kwargs)
        per_epoch.append(mosaics[0] - before)
        return result

    monkeypatch.setattr(trainer, "train_one_epoch", watched)
    trainer.train(tiny_options(data, epochs=4, close_mosaic=1), out=tmp_path / "run", console=quiet())
    assert flags == [True, True, True, False]
    assert per_epoch == [2, 2, 2, 0]


def test_time_budget_refits_the_epochs_and_the_lr_schedule_inside_the_loop(tmp_path, monkeypatch):
    """Asked for 4 epochs, the budget fits 2: the run stops after 2, and its lr decays over 2 epochs (epoch 2
    trains at 0.01·(1 − 0.99·1/2) = 0.00505, not at the 4-epoch schedule's 0.007525)."""
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    asked = []

    def budget_fits_two(*args, **kwargs):
        asked.append(args)
        return 2

    monkeypatch.setattr(trainer, "fit_epochs_to_time", budget_fits_two)
    run = tmp_path / "run"
    trainer.train(tiny_options(data, epochs=4, time=30.0, warmup_epochs=0.0), out=run, console=quiet())

    assert asked  # the loop asked how many epochs fit
    table = rows(run)
    assert [r["epoch"] for r in table] == ["1", "2"]
    assert float(table[0]["lr/other"]) == pytest.approx(0.01, rel=1e-4)
    assert float(table[1]["lr/other"]) == pytest.approx(0.00505, rel=1e-4)
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 1


def test_runs_are_numbered_and_exist_ok_reuses_a_folder(cli, tmp_path, monkeypatch):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    monkeypatch.chdir(tmp_path)
    tiny = ["train", "--backbone", "yolov5n", "--epochs", "1", "--img-size", "64", "--batch-size", "2",
            "--workers", "0", "--device", "cpu", "--data", str(data)]
    assert cli(*tiny)[0] == 0
    assert cli(*tiny)[0] == 0
    runs = tmp_path / "runs" / "train"
    assert sorted(p.name for p in runs.iterdir()) == ["exp", "exp2"]
    assert all((runs / n / "weights" / "last.pt").is_file() for n in ("exp", "exp2"))

    code, _, err = cli(*tiny, "--out", str(runs / "exp"))
    assert code == 1 and "already exists" in err
    code, _, err = cli(*tiny, "--out", str(runs / "exp"), "--exist-ok")
    assert code == 0, err
    assert sorted(p.name for p in runs.iterdir()) == ["exp", "exp2"]
    assert [r["epoch"] for r in rows(runs / "exp")] == ["1"]  # overwritten: the old run's rows are gone


def test_an_epoch_the_time_budget_makes_the_last_is_validated_whatever_the_val_interval(tmp_path, monkeypatch):
    """Asked for 6 epochs validated every 4th; when epoch 3 has trained, the budget turns out to fit no more. Epoch 3
    ends the run, so it is validated (its row has mAP, best.pt and the summary describe it) although 3 is not a
    multiple of 4."""
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)

    def budget(budget_s, spent_s, done_here, done, epochs):
        return 6 if done < 3 else 3

    monkeypatch.setattr(trainer, "fit_epochs_to_time", budget)
    run = tmp_path / "run"
    trainer.train(tiny_options(data, epochs=6, time=30.0, val_interval=4), out=run, console=quiet())

    table = rows(run)
    assert [r["epoch"] for r in table] == ["1", "2", "3"]
    assert [r["metrics/mAP50-95"] != "" for r in table] == [False, False, True]
