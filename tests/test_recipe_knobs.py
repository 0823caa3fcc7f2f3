"""The fine-tuning knobs keep what they promise: layer-wise lr decay gives each backbone stage its lr (ResNet,
ConvNeXt, Swin alike), ``--bn frozen`` fixes statistics and affine parameters like torchvision's FrozenBatchNorm2d,
and ``--freeze-backbone-epochs`` trains the backbone only from epoch N on, resumed or not."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from rich.console import Console
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

import yoloswap.training.loop as trainer
from tests.make_data import ultralytics_set
from yoloswap.backbones.freeze import apply_bn_mode, apply_freezing
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.sources import build_backbone
from yoloswap.config.options import TrainOptions
from yoloswap.data.transforms import AugmentConfig
from yoloswap.errors import UsageError
from yoloswap.training.optim import build_optimizer
from yoloswap.training.schedule import Schedule

LR = 0.01


class WithNeck(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Conv2d(3, 3, 1)


def lr_of_every_parameter(model: nn.Module, optimizer) -> dict[str, float]:
    by_id = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("spec", ["torchvision:resnet18", "timm:convnext_atto", "timm:swin_tiny_patch4_window7_224"])
def test_layer_decay_gives_each_stage_lr_times_r_to_its_depth_from_the_top(spec):
    with torch.device("meta"):
        model = WithNeck(build_backbone(resolve_backbone(spec)))
    optimizer = build_optimizer(model, "adamw", LR, 0.9, 0.05, layer_decay=0.5)
    lrs = lr_of_every_parameter(model, optimizer)
    stages = model.backbone.stages  # stem, stage 1..4
    assert all(stages), f"{spec}: every stage holds parameters"
    for index, names in enumerate(stages):
        depth = 5 - index  # stage 4 → 1, stem → 5
        for name in names:
            assert lrs[f"backbone.body.{name}"] == pytest.approx(LR * 0.5 ** depth), name
    assert lrs["neck.weight"] == lrs["neck.bias"] == LR  # neck and head: full lr
    assert len(lrs) == len(list(model.parameters())), "every parameter in exactly one group"


def test_layer_decay_multiplies_with_the_backbone_lr_multiplier_and_1_changes_nothing():
    with torch.device("meta"):
        model = WithNeck(build_backbone(resolve_backbone("torchvision:resnet18")))
    top = f"backbone.body.{model.backbone.stages[4][0]}"
    both = lr_of_every_parameter(model, build_optimizer(model, "sgd", LR, 0.9, 0.0, backbone_lr_mult=0.1,
                                                         layer_decay=0.8))
    assert both[top] == pytest.approx(LR * 0.1 * 0.8)
    plain = build_optimizer(model, "sgd", LR, 0.9, 0.0, backbone_lr_mult=0.1)
    assert {g["name"] for g in plain.param_groups} == {"backbone.decay", "backbone.no_decay", "backbone.bias",
                                                       "detector.decay", "detector.bias"}  # the neck has no norm
    assert sorted(set(lr_of_every_parameter(model, plain).values())) == pytest.approx([LR * 0.1, LR])


def as_frozen_batchnorm(module: nn.Module) -> nn.Module:
    """A copy with every BatchNorm2d replaced by torchvision's FrozenBatchNorm2d (the reference)."""
    module = copy.deepcopy(module)
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.load_state_dict(child.state_dict())
            setattr(module, name, frozen)
        else:
            setattr(module, name, as_frozen_batchnorm(child))
    return module


def test_bn_frozen_leaves_statistics_and_affine_parameters_untouched_like_frozen_batchnorm2d():
    torch.manual_seed(0)
    backbone = build_backbone(resolve_backbone("torchvision:resnet18"))
    for m in backbone.modules():  # trained-looking statistics and affine values, not the 0/1 of a fresh model
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.2, 0.2)
    apply_freezing(backbone, frozen_stages=0, norm_eval=False)
    apply_bn_mode(backbone, "frozen")
    reference = as_frozen_batchnorm(backbone.body).eval()
    norms = {k: v.clone() for k, v in backbone.state_dict().items() if ".bn" in k or "downsample.1" in k}
    assert norms

    backbone.train()
    optimizer = torch.optim.SGD([p for p in backbone.parameters() if p.requires_grad], lr=0.1)
    x = torch.randn(2, 3, 64, 64)
    for _ in range(2):
        optimizer.zero_grad()
        sum(f.square().mean() for f in backbone(x)).backward()
        optimizer.step()
    after = backbone.state_dict()
    for key, before in norms.items():
        assert torch.equal(after[key], before), f"{key} moved"
    # What the backbone computes is what FrozenBatchNorm2d computes (with the convolutions it has now).
    reference.load_state_dict({k: v for k, v in backbone.body.state_dict().items() if "num_batches" not in k})
    with torch.no_grad():
        ours = backbone(x)
        theirs = backbone._extract(reference, x)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item()), (a - b).abs().max()


def test_bn_eval_trains_the_affine_parameters_but_not_the_statistics():
    backbone = build_backbone(resolve_backbone("torchvision:resnet18"))
    apply_freezing(backbone, frozen_stages=0, norm_eval=False)
    apply_bn_mode(backbone, "eval")
    bn = backbone.body.bn1
    assert bn.weight.requires_grad and not bn.training
    backbone.train()
    assert not bn.training


def test_a_bad_bn_mode_is_a_usage_error_naming_the_option():
    with pytest.raises(UsageError, match="--bn"):
        TrainOptions(bn="fozen").check()
    with pytest.raises(UsageError, match="--layer-decay"):
        TrainOptions(layer_decay=1.5).check()


def test_the_frozen_backbone_gets_no_gradient_before_epoch_n_then_warms_up_from_zero():
    model = WithNeck(build_backbone(resolve_backbone("torchvision:resnet18")))
    optimizer = build_optimizer(model, "sgd", LR, 0.9, 0.0)
    schedule = Schedule(epochs=4, iters_per_epoch=3, warmup_epochs=1, min_warmup_iters=0,
                        freeze_backbone_epochs=2)
    x = torch.randn(1, 3, 64, 64)
    seen = []
    for epoch in range(4):
        for i in range(3):
            schedule.apply(optimizer, epoch * 3 + i, epoch)
            optimizer.zero_grad(set_to_none=True)
            (sum(f.mean() for f in model.backbone(x)) + model.neck(x).mean()).backward()
            backbone_lr = max(g["lr"] for g in optimizer.param_groups if g["part"] == "backbone")
            seen.append((epoch, model.backbone.body.conv1.weight.grad is not None, backbone_lr))
            assert model.neck.weight.grad is not None
    assert all(not got and lr == 0 for e, got, lr in seen if e < 2)
    assert all(got for e, got, _ in seen if e >= 2)
    warm = [lr for e, _, lr in seen if e == 2]
    assert 0 == warm[0] < warm[1] < warm[2], "its own warmup from 0 once unfrozen"


def test_freeze_backbone_epochs_holds_across_a_resume(tmp_path, monkeypatch):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=1)  # 2 steps an epoch
    options = TrainOptions(backbone="yolov5n", data=str(data), epochs=3, img_size=64, batch_size=2,
                           nominal_batch=2, workers=0, device="cpu", amp=False, freeze_backbone_epochs=2,
                           warmup_epochs=0, autoanchor=False,
                           augment=AugmentConfig(mosaic=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0))
    real_epoch = trainer.train_one_epoch
    moved: list[tuple[bool, bool]] = []  # per epoch: (backbone changed, neck/head changed)

    def epoch(run, *args, **kwargs):
        if len(moved) == 2 and crash[0]:
            raise KeyboardInterrupt  # stopped during epoch 2 (still frozen)
        net = run.model
        before = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
        out = real_epoch(run, *args, **kwargs)
        after = net.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        params = {n for n, _ in net.named_parameters()}
        moved.append((any(k.startswith("backbone.") and k in params for k in changed),
                      any(not k.startswith("backbone.") and k in params for k in changed)))
        return out

    crash = [True]
    monkeypatch.setattr(trainer, "train_one_epoch", epoch)
    console = Console(file=io.StringIO())
    with pytest.raises(KeyboardInterrupt):
        trainer.train(options, out=tmp_path / "run", console=console)
    crash[0] = False
    trainer.train(TrainOptions(device="cpu", workers=0), resume=tmp_path / "run", console=console)
    assert moved == [(False, True), (False, True), (True, True)], moved
