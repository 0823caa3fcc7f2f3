"""The lr schedule and the time budget: pure functions, so a resumed run lands on the same values."""

from __future__ import annotations

import pytest
import torch

from yoloswap.training.schedule import Schedule
from yoloswap.training.loop import fit_epochs_to_time


def _optimizer():
    w = torch.nn.Parameter(torch.zeros(2, 2))
    b = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [w], "kind": "decay"}, {"params": [b], "kind": "bias"}], lr=0.01, momentum=0.937)
    for g in opt.param_groups:
        g["initial_lr"] = 0.01
    return opt


def test_warmup_ramps_weights_from_zero_and_biases_down_from_point_one():
    s = Schedule(epochs=10, iters_per_epoch=50, warmup_epochs=3.0, min_warmup_iters=100)
    assert s.warmup_iters == 150
    opt = _optimizer()
    s.apply(opt, 0, 0)
    assert opt.param_groups[0]["lr"] == 0.0 and abs(opt.param_groups[1]["lr"] - 0.1) < 1e-12
    assert abs(opt.param_groups[0]["momentum"] - 0.8) < 1e-12
    s.apply(opt, 150, 3)
    assert abs(opt.param_groups[0]["lr"] - 0.01 * s.factor(3)) < 1e-12
    assert abs(opt.param_groups[0]["momentum"] - 0.937) < 1e-12


def test_linear_and_cosine_decay_end_at_lrf():
    for cosine in (False, True):
        s = Schedule(epochs=100, iters_per_epoch=1, lrf=0.01, cosine=cosine)
        assert s.factor(0) == 1.0
        assert abs(s.factor(100) - 0.01) < 1e-9
        assert s.factor(30) > s.factor(60)


def test_warmup_never_takes_more_than_half_the_run():
    assert Schedule(epochs=4, iters_per_epoch=10).warmup_iters == 20


def test_time_budget_refits_the_number_of_epochs():
    # 60 s per epoch so far, 10 min budget, 2 epochs done: 8 more fit
    assert fit_epochs_to_time(600, 120, 2, 2, 30) == 10
    # never more than asked for
    assert fit_epochs_to_time(6000, 120, 2, 2, 30) == 30
    # budget already spent: stop after this epoch
    assert fit_epochs_to_time(60, 106, 1, 1, 30) == 1


# ------------------------------------------------------------------------------------------------ shape in the middle


def test_linear_decay_is_a_straight_line_and_cosine_a_half_cosine():
    """lr factor at epoch e of E (lrf 0.01): linear 1 − 0.99·e/E; cosine 1 − 0.99·(1 − cos(π·e/E))/2."""
    linear = Schedule(epochs=100, iters_per_epoch=1, lrf=0.01, cosine=False)
    cosine = Schedule(epochs=100, iters_per_epoch=1, lrf=0.01, cosine=True)
    expected = {  # epoch: (linear, cosine), worked out by hand
        10: (0.901, 0.975773),
        25: (0.7525, 0.855018),
        50: (0.505, 0.505),
        75: (0.2575, 0.154982),
        90: (0.109, 0.034227),
    }
    for epoch, (lin, cos) in expected.items():
        assert linear.factor(epoch) == pytest.approx(lin, abs=1e-5), epoch
        assert cosine.factor(epoch) == pytest.approx(cos, abs=1e-5), epoch


def test_decay_reaches_the_optimizer_groups_after_warmup():
    s = Schedule(epochs=10, iters_per_epoch=20, lrf=0.1, cosine=True, warmup_epochs=1.0, min_warmup_iters=0)
    opt = _optimizer()
    s.apply(opt, 5 * 20 + 3, 5)  # epoch 5 of 10, past warmup: factor 1 − 0.9·(1 − cos(π/2))/2 = 0.55
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.0055, 0.0055], abs=1e-12)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.937, abs=1e-12)


def test_warmup_ramps_linearly_through_the_intermediate_iterations():
    """150 warmup iterations: weights' lr from 0 and biases' from 0.1 to the decayed lr, momentum 0.8 → 0.937."""
    s = Schedule(epochs=10, iters_per_epoch=50, warmup_epochs=3.0, min_warmup_iters=100)
    opt = _optimizer()
    for iteration, epoch in ((30, 0), (75, 1), (120, 2)):
        t = iteration / 150
        target = 0.01 * (1 - 0.99 * epoch / 10)  # linear decay at that epoch
        s.apply(opt, iteration, epoch)
        weight, bias = opt.param_groups
        assert weight["lr"] == pytest.approx(t * target, abs=1e-12), iteration
        assert bias["lr"] == pytest.approx(0.1 + t * (target - 0.1), abs=1e-12), iteration
        assert weight["momentum"] == pytest.approx(0.8 + t * (0.937 - 0.8), abs=1e-12), iteration
        assert bias["momentum"] == pytest.approx(0.8 + t * (0.937 - 0.8), abs=1e-12), iteration
    # at iteration 75 (half way) by number: weight lr 0.5 · 0.00901, momentum 0.8685
    s.apply(opt, 75, 1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.004505, abs=1e-12)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.8685, abs=1e-12)


def test_adamw_beta1_warms_up_like_sgd_momentum_and_beta2_is_kept():
    w = torch.nn.Parameter(torch.zeros(2, 2))
    opt = torch.optim.AdamW([{"params": [w], "kind": "decay", "initial_lr": 0.001}], lr=0.001, betas=(0.9, 0.999))
    s = Schedule(epochs=10, iters_per_epoch=10, warmup_epochs=2.0, min_warmup_iters=0, warmup_bias_lr=0.0,
                 momentum=0.9)
    assert s.warmup_iters == 20
    betas = {}
    for iteration in (0, 5, 10, 15, 20, 30):
        s.apply(opt, iteration, iteration // 10)
        betas[iteration] = opt.param_groups[0]["betas"]
    assert {i: b[0] for i, b in betas.items()} == pytest.approx(
        {0: 0.8, 5: 0.825, 10: 0.85, 15: 0.875, 20: 0.9, 30: 0.9}, abs=1e-12)
    assert all(b[1] == 0.999 for b in betas.values())
    s.apply(opt, 10, 1)  # half way: lr half of 0.001 · (1 − 0.99 · 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.001 * 0.901, abs=1e-12)
