"""The lr schedule and the time budget: pure functions, so a resumed run lands on the same values."""

from __future__ import annotations

import torch

from yoloswap.engine.schedule import Schedule
from yoloswap.engine.trainer import fit_epochs_to_time


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
