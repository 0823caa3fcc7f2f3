"""The training loop's recipe and its speed contract: `auto` optimizer, accumulation ramp, mosaic and time-budget
rules, defaults in one place, and a step that never waits for the device."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from tests.make_data import ultralytics_set
from yoloswap.training import loop as trainer
from yoloswap.training import setup
from yoloswap.training.ema import ModelEMA
from yoloswap.training.optim import choose_optimizer, optimizer_steps, short_run_adamw_lr
from yoloswap.config.options import BUILTIN_SET_DEFAULTS, HELP, TrainOptions
from yoloswap.training.schedule import Schedule
from yoloswap.config.presets import OptimizerSpec

SGD_PRESET = OptimizerSpec("sgd", 0.01, 0.937, 0.0005)
ADAMW_PRESET = OptimizerSpec("adamw", 0.001, 0.9, 0.05)


# ------------------------------------------------------------------------------------------- optimizer auto


def test_steps_count_one_per_nominal_batch_or_per_batch_when_larger():
    assert optimizer_steps(320, 16, 64, 30) == 5 * 30
    assert optimizer_steps(321, 16, 64, 1) == 6
    assert optimizer_steps(320, 128, 64, 2) == 3 * 2


def test_auto_picks_adamw_for_short_runs_and_the_preset_recipe_for_long_ones():
    short = choose_optimizer("auto", None, SGD_PRESET, num_classes=6, steps=10_000)
    assert (short.name, short.lr, short.momentum, short.warmup_bias_lr) == ("adamw", 0.001, 0.9, 0.0)
    assert "10,000" in short.reason
    assert choose_optimizer("auto", None, SGD_PRESET, 80, 100).lr == pytest.approx(0.002 * 5 / 84, abs=1e-6)
    long = choose_optimizer("auto", None, SGD_PRESET, num_classes=6, steps=10_001)
    assert (long.name, long.lr, long.momentum, long.warmup_bias_lr) == ("sgd", 0.01, 0.937, 0.1)
    # a preset that already recommends AdamW keeps its own lr
    assert choose_optimizer("auto", None, ADAMW_PRESET, 80, 100).lr == 0.001


def test_an_explicit_optimizer_or_lr_wins_over_auto():
    assert choose_optimizer("sgd", None, SGD_PRESET, 6, steps=10).name == "sgd"
    tuned = choose_optimizer("adamw", 3e-4, SGD_PRESET, 6, steps=10**6)
    assert (tuned.name, tuned.lr) == ("adamw", 3e-4)
    # --lr alone: the preset's optimizer at that lr, however short the run
    alone = choose_optimizer("auto", 0.02, SGD_PRESET, 6, steps=10)
    assert (alone.name, alone.lr, alone.momentum) == ("sgd", 0.02, 0.937)
    assert choose_optimizer("adamw", None, SGD_PRESET, 6, steps=10).lr == short_run_adamw_lr(6)


# ------------------------------------------------------------------------------------------- YOLOv5 recipe


def test_accumulation_ramps_from_one_to_nominal_over_batch_during_warmup():
    s = Schedule(epochs=10, iters_per_epoch=50, warmup_epochs=3.0, accumulate=4.0)  # nominal 64, batch 16
    assert s.warmup_iters == 150
    assert [s.accumulate_at(i) for i in (0, 20, 75, 140, 150, 400)] == [1, 1, 2, 4, 4, 4]
    assert Schedule(epochs=10, iters_per_epoch=50, warmup_epochs=0.0, accumulate=4.0).accumulate_at(0) == 4


def test_the_loop_steps_the_optimizer_as_the_ramp_says(tmp_path, monkeypatch):
    run, loader, loss_fn = _tiny_run(tmp_path, n_train=16, batch=1, nominal=4)
    run.schedule = Schedule(epochs=1, iters_per_epoch=16, warmup_epochs=1.0, min_warmup_iters=8, accumulate=4.0)
    calls, steps = [], []
    real_apply = Schedule.apply
    monkeypatch.setattr(Schedule, "apply", lambda self, opt, it, ep: (calls.append(it), real_apply(self, opt, it, ep)))
    monkeypatch.setattr(trainer, "_optimizer_step", lambda r: steps.append(calls[-1]))
    trainer.train_one_epoch(run, loader, loss_fn, 0)
    # warmup of 8 batches accumulates round(1 + 3i/8) = 1,1,2,2,2,3,3,4 batches, then 4; the last batch always steps
    assert steps == [0, 1, 3, 6, 10, 14, 15]  # without the ramp: [3, 7, 11, 15]


@pytest.mark.parametrize("epochs,close,mosaic_epochs", [(4, 10, 3), (2, 10, 2), (100, 10, 90), (30, 10, 23),
                                                         (30, 0, 30), (12, 2, 10)])
def test_close_mosaic_never_takes_more_than_a_quarter_of_the_run(epochs, close, mosaic_epochs):
    assert sum(trainer.mosaic_on(e, epochs, close) for e in range(epochs)) == mosaic_epochs
    assert all(trainer.mosaic_on(e, epochs, close) for e in range(mosaic_epochs))  # the first epochs


def test_time_budget_refits_up_as_well_as_down_but_never_past_epochs():
    # first epoch slow (60 s): 10 min hold 10 epochs; then the pace doubles: 2 epochs in 90 s → 13 fit
    assert trainer.fit_epochs_to_time(600, 60, 1, 1, 30) == 10
    assert trainer.fit_epochs_to_time(600, 90, 2, 2, 30) == 13
    assert trainer.fit_epochs_to_time(600, 90, 2, 2, 12) == 12


def test_ema_update_matches_the_formula_for_every_float_tensor():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = ModelEMA(model, updates=999)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.fill_(3.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    d = ema.current_decay()
    after, source = ema.module.state_dict(), model.state_dict()
    for k, v in after.items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, d * before[k] + (1 - d) * source[k], atol=1e-6), k
        else:
            assert torch.equal(v, source[k]), k


# ------------------------------------------------------------------------------------------- defaults


def test_options_for_user_data_and_for_the_builtin_set_come_from_one_place():
    user = TrainOptions.for_data("data.yaml", {"epochs": None, "hsv_h": 0.1})
    assert (user.epochs, user.img_size, user.time, user.nominal_batch) == (100, 640, None, 64)
    assert user.augment.hsv_h == 0.1 and user.augment.hsv_s == 0.7 and user.optimizer == "auto"
    builtin = TrainOptions.for_data(None, {})
    resolved = {k: getattr(builtin.augment if hasattr(builtin.augment, k) else builtin, k) for k in BUILTIN_SET_DEFAULTS}
    assert resolved == BUILTIN_SET_DEFAULTS  # augmentation strengths among them land in AugmentConfig
    assert TrainOptions.for_data(None, {"mosaic": 1.0, "img_size": 224}).augment.mosaic == 1.0  # the user's win
    assert builtin.time is None  # budgeted by epochs, not by the clock: the result does not depend on the machine


def test_every_training_option_has_help_and_the_cli_shows_its_default():
    import dataclasses

    from typer.testing import CliRunner

    from yoloswap.cli.app import app
    from yoloswap.data.transforms import AugmentConfig

    fields = {f.name for f in dataclasses.fields(TrainOptions)} - {"augment", "data"}
    fields |= {f.name for f in dataclasses.fields(AugmentConfig)}
    assert fields <= set(HELP)
    text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output
    assert "(default 100; 16 on the built-in set)" in text and "(default 0.015)" in text


# ------------------------------------------------------------------------------------------- host syncs


SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def _tiny_run(tmp_path, n_train=8, batch=2, nominal=2):
    from yoloswap.losses import YOLOv5Loss

    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=n_train)
    options = TrainOptions(backbone="yolov5n", data=str(data), epochs=1, img_size=64, batch_size=batch,
                           nominal_batch=nominal, workers=0, device="cpu")
    (tmp_path / "run" / "weights").mkdir(parents=True)
    run, (train_loader, _) = trainer.build_run(options, tmp_path / "run", log=lambda *a, **k: None)
    head = run.model.head
    return run, train_loader, YOLOv5Loss(len(run.names), head.anchors, head.stride_values, img_size=64)


def _count_syncs(monkeypatch) -> list[str]:
    """Patch the tensor methods that read values back to the host; record calls made by yoloswap's own code
    outside data loading (which works on host tensors by design)."""
    calls = []
    for name in SYNCS:
        real = getattr(torch.Tensor, name)

        def counting(self, *args, __real=real, __name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if "/yoloswap/" in caller and "/yoloswap/data/" not in caller:
                calls.append(f"{__name} in {caller.rsplit('/', 2)[-2:]}")
            return __real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return calls


def test_a_training_step_never_reads_a_value_back_from_the_device(tmp_path, monkeypatch):
    run, loader, loss_fn = _tiny_run(tmp_path)
    assert len(loader) == 4
    reads = []
    real_read = trainer._read_out
    monkeypatch.setattr(trainer, "_read_out", lambda *a: (reads.append(True), real_read(*a))[1])
    monkeypatch.setattr(trainer, "READOUT_S", 1e9)  # read-outs only where they must happen: after the last batch
    calls = _count_syncs(monkeypatch)
    means, _ = trainer.train_one_epoch(run, loader, loss_fn, 0)
    assert len(reads) == 1
    assert calls == ["tolist in ['training', 'loop.py']"]  # the single read-out of the epoch, nothing per step
    assert len(means) == 3 and all(m > 0 for m in means)

    calls.clear()
    monkeypatch.setattr(trainer, "READOUT_S", 0.0)  # a read-out after every batch: one sync each
    trainer.train_one_epoch(run, loader, loss_fn, 1)
    assert calls == ["tolist in ['training', 'loop.py']"] * 4


def test_a_non_finite_loss_stops_at_the_read_out_naming_the_batch_it_appeared_in(tmp_path, monkeypatch):
    from yoloswap.errors import TrainingError

    run, loader, loss_fn = _tiny_run(tmp_path)
    monkeypatch.setattr(trainer, "READOUT_S", 1e9)
    batches = []

    def nan_from_second_batch(outputs, targets):
        loss, items = type(loss_fn).__call__(loss_fn, outputs, targets)
        batches.append(True)
        return (loss * float("nan"), items) if len(batches) >= 2 else (loss, items)

    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, batch 2; stopping"):
        trainer.train_one_epoch(run, loader, nan_from_second_batch, 0)


def test_a_time_budget_run_is_judged_by_the_steps_that_fit_and_the_estimate_leaves_the_model_alone(tmp_path):
    import dataclasses

    run, _, _ = _tiny_run(tmp_path)
    model = run.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    options = dataclasses.replace(run.options, optimizer="auto", lr=None, epochs=100_000, time=0.01)
    # 100,000 epochs of 4 steps would be long (SGD), but 0.6 s hold a few epochs of this model at most: AdamW
    choice = setup._choose_optimizer(options, run.preset, 3, 8, model, 2, run.device, None)
    assert choice.name == "adamw" and re.search(r"\(--time 0.01 min: about \d+ epochs\)", choice.reason)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # weights and BN statistics
    assert all(p.grad is None for p in model.parameters())
    no_budget = dataclasses.replace(options, time=None)
    assert setup._choose_optimizer(no_budget, run.preset, 3, 8, model, 2, run.device, None).name == "sgd"


def test_validation_while_training_runs_in_the_training_precision(tmp_path, monkeypatch):
    """A bf16 run validates under bf16 autocast (Ultralytics validates in half while training); fp32 runs in fp32.
    ``yoloswap val`` is not this path and stays in float32."""
    run, loader, loss_fn = _tiny_run(tmp_path)
    seen = []

    class Recorded(Exception):
        pass

    def recording_evaluate(*args, **kwargs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        raise Recorded  # enough: the precision is what this test reads

    monkeypatch.setattr(trainer, "evaluate", recording_evaluate)
    for amp_dtype in (torch.bfloat16, None):
        run.amp_dtype = amp_dtype
        with pytest.raises(Recorded):
            trainer._validate(run, loader, loss_fn, trainer.Progress(), 0)
    assert seen == [torch.bfloat16, None]
