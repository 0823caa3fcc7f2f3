"""The EMA of the weights, which evaluation and best.pt use: its values after known updates, by number."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yoloswap.training.ema import ModelEMA


def constant_model(value: float) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    set_all(model, value)
    return model


@torch.no_grad()
def set_all(model: nn.Module, value: float, running_mean: float | None = None, batches: int | None = None) -> None:
    for p in model.parameters():
        p.fill_(value)
    bn = model[1]
    if running_mean is not None:
        bn.running_mean.fill_(running_mean)
    if batches is not None:
        bn.num_batches_tracked.fill_(batches)


def test_decay_ramps_from_zero_towards_its_ceiling():
    ema = ModelEMA(constant_model(0.0))  # YOLOv5's decay 0.9999, tau 2000
    assert ema.current_decay() == 0.0
    ema.updates = 1
    assert ema.current_decay() == pytest.approx(0.9999 * (1 - 2.718281828459045 ** (-1 / 2000)), rel=1e-9)
    ema.updates = 2000
    assert ema.current_decay() == pytest.approx(0.632057, abs=1e-6)
    ema.updates = 100_000
    assert ema.current_decay() == pytest.approx(0.9999, abs=1e-9)


def test_values_after_two_known_updates():
    """decay 0.5, tau 1: d1 = 0.5(1 − e⁻¹) = 0.316060, d2 = 0.5(1 − e⁻²) = 0.432332.
    Weights 1 → model 3: 0.316060·1 + 0.683940·3 = 2.367879 → model 5: 0.432332·2.367879 + 0.567668·5 = 3.862049.
    """
    model = constant_model(1.0)
    ema = ModelEMA(model, decay=0.5, tau=1.0)
    set_all(model, 3.0, running_mean=0.5, batches=7)
    assert all(float(p) == 1.0 for p in ema.module.parameters() for p in p.flatten())  # a copy, not a view

    ema.update(model)
    assert ema.updates == 1
    for p in ema.module.parameters():
        assert torch.allclose(p, torch.full_like(p, 2.367879), atol=1e-6)
    bn = ema.module[1]
    assert bn.running_mean.item() == pytest.approx(0.683940 * 0.5, abs=1e-6)  # buffers are averaged too
    assert bn.num_batches_tracked.item() == 7  # integer buffers are copied

    set_all(model, 5.0, running_mean=0.25, batches=9)
    ema.update(model)
    assert ema.updates == 2
    for p in ema.module.parameters():
        assert torch.allclose(p, torch.full_like(p, 3.862049), atol=1e-6)
    assert bn.running_mean.item() == pytest.approx(0.289762, abs=1e-6)
    assert bn.num_batches_tracked.item() == 9


def test_the_average_is_frozen_and_in_eval_mode():
    model = constant_model(1.0).train()
    ema = ModelEMA(model)
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in model.parameters())
