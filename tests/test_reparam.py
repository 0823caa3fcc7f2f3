"""Re-parameterisation for inference: a fused copy that computes what the training form computes, never an
in-place change (checkpoints stay trainable). Forward only, in eval mode and without gradients."""

from __future__ import annotations

import pytest
import torch

from yoloswap.assembly import build_detector
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.deploy.reparam import reparameterized
from yoloswap.models.yolo_blocks import RepVGGBlock


def _calibrated(backbone: str, size: int = 64):
    """An untrained detector whose BatchNorms hold realistic running statistics (a few forward passes), so the
    eval-mode outputs are in a normal range and BN folding is exercised with non-trivial statistics."""
    torch.manual_seed(0)
    model, _ = build_detector(resolve_backbone(backbone), 3, (size, size))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average of the passes below
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model.neck(model.backbone(torch.rand(2, 3, size, size)))
    return model.eval()


# timm:mobileone_s0 goes through the same timm call as repvgg_a0; in float64 it alone costs minutes on 2 cores
@pytest.mark.parametrize("backbone", ["yolov6n", "yolov6m", "timm:repvgg_a0"])
def test_fused_detector_gives_the_training_forms_boxes_and_scores(backbone):
    model = _calibrated(backbone).double()
    fused = reparameterized(model)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before, after = model.infer(x), fused.infer(x)  # (N, rows, 4 box + obj/cls scores)
    assert (before[..., :4] - after[..., :4]).abs().max() < 0.01  # px
    assert (before[..., 4:] - after[..., 4:]).abs().max() < 1e-3
    assert sum(p.numel() for p in fused.parameters()) < sum(p.numel() for p in model.parameters())


def test_the_training_form_is_left_as_it_was():
    model = _calibrated("yolov6n")
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    fused = reparameterized(model)
    assert model.state_dict().keys() == keys.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in keys.items())
    blocks = [m for m in model.modules() if isinstance(m, RepVGGBlock)]
    assert blocks and all(b.fused is None and b.rbr_dense is not None for b in blocks)
    fused_blocks = [m for m in fused.modules() if isinstance(m, RepVGGBlock)]
    assert all(b.fused is not None and not hasattr(b, "rbr_dense") for b in fused_blocks)


def test_benchmark_times_the_fused_form_unless_told_not_to():
    from yoloswap.cli.deploy import _model_for_benchmark

    fused = _model_for_benchmark(None, "yolov6n", 3, 64)[0]
    kept = _model_for_benchmark(None, "yolov6n", 3, 64, reparam=False)[0]
    assert all(b.fused is not None for b in fused.modules() if isinstance(b, RepVGGBlock))
    assert all(b.fused is None for b in kept.modules() if isinstance(b, RepVGGBlock))
