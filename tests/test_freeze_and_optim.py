"""Backbone training controls: frozen stages stay frozen (weights and BatchNorm statistics), and the optimizer
trains every other parameter exactly once, ConvNeXt's gamma and Swin's position tables included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yoloswap.backbones.sources import build_backbone
from yoloswap.backbones.freeze import apply_freezing
from yoloswap.training.optim import build_optimizer
from yoloswap.errors import ConfigError
from yoloswap.config.presets import preset_names
from yoloswap.backbones.resolve import resolve_backbone

BN = nn.modules.batchnorm._BatchNorm


class TinyDetector(nn.Module):
    """A backbone plus a 1×1 conv per level: enough to train the backbone through its three outputs."""

    def __init__(self, backbone: nn.Module, channels: list[int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.ModuleList(nn.Conv2d(c, 4, 1) for c in channels)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        return sum(self.norm(h(f)).square().mean() for h, f in zip(self.head, feats))


def detector(spec: str, device: str = "cpu") -> TinyDetector:
    with torch.device(device):
        backbone = build_backbone(resolve_backbone(spec))
        channels = [f.shape[1] for f in backbone(torch.zeros(1, 3, 64, 64))]
        return TinyDetector(backbone, channels)


# What ``frozen_stages: 1`` means for each preset, written from each architecture's strides (not read from the
# implementation's grouping): the stem and the modules up to the end of the stride-4 stage.
STAGE1_AND_STEM = {
    "resnet50": ("conv1.", "bn1.", "layer1."),
    "mocov3-resnet50": ("conv1.", "bn1.", "layer1."),
    "convnext-tiny": ("stem.", "stages.0."),  # stem is 4×4 stride 4; stages.1 opens with the stride-8 downsample
    "swin-tiny": ("patch_embed.", "layers.0."),  # patch embedding stride 4; layers.1 opens with patch merging
    "efficientnet-b1": ("conv_stem.", "bn1.", "blocks.0.", "blocks.1."),  # blocks.1 ends at stride 4
    "mobilenetv3-small": ("features.0.", "features.1."),  # features.1 is the stride-4 block
    "yolov5n": ("stem.", "stage1."),
    "yolov5s": ("stem.", "stage1."),
    "yolov5m": ("stem.", "stage1."),
    "yolov5l": ("stem.", "stage1."),
    # yoloswap's YOLO-family backbones share CSPDarknet's layout: stride-2 stem, stage1 ends at stride 4.
    **{n: ("stem.", "stage1.") for n in ("yolov6n", "yolov6t", "yolov6s", "yolov6m", "yolov6l", "yolov8n", "yolov8s", "yolov8m", "yolov8l",
                                         "cspnext-t", "cspnext-s", "cspnext-m", "cspnext-l")},
}


def frozen_names(backbone, prefixes: tuple[str, ...]) -> set[str]:
    return {name for name, _ in backbone.body.named_parameters() if name.startswith(prefixes)}


def test_every_preset_has_its_expected_frozen_stage():
    assert set(STAGE1_AND_STEM) == set(preset_names())


# ----------------------------------------------------------------------------------------------------------
# Freezing, for every preset (meta device: shapes and autograd only, no arithmetic)


@pytest.mark.parametrize("name", preset_names())
def test_frozen_stages_and_norm_eval_hold_across_model_train(name):
    model = detector(name, "meta")
    backbone = model.backbone
    apply_freezing(backbone, frozen_stages=1, norm_eval=True)
    frozen = frozen_names(backbone, STAGE1_AND_STEM[name])
    assert frozen and len(frozen) < len(list(backbone.body.parameters())), "stem + stage 1, not everything"

    for pname, p in backbone.body.named_parameters():
        assert p.requires_grad == (pname not in frozen), pname

    model.train()  # what every epoch starts with
    for mname, module in backbone.body.named_modules():
        own = [f"{mname}.{p}" if mname else p for p, _ in module.named_parameters(recurse=False)]
        if isinstance(module, BN):
            assert not module.training, f"{mname}: BatchNorm must stay in eval mode (norm_eval)"
        elif own and all(p in frozen for p in own):
            assert not module.training, f"{mname}: frozen module must stay in eval mode"
        elif own:
            assert module.training, f"{mname}: trainable module must train"
    assert model.head.training and model.norm.training  # only the backbone is affected

    # What DDP needs: every trainable parameter gets a gradient, frozen ones none.
    model(torch.zeros(2, 3, 64, 64, device="meta")).backward()
    for pname, p in backbone.body.named_parameters():
        assert (p.grad is None) == (pname in frozen), pname


def test_nothing_frozen_by_default_and_everything_with_all_stages():
    model = detector("torchvision:resnet18", "meta")
    apply_freezing(model.backbone, frozen_stages=0, norm_eval=False)
    assert all(p.requires_grad for p in model.parameters())
    model.train()
    assert all(m.training for m in model.modules())

    apply_freezing(model.backbone, frozen_stages=4, norm_eval=False)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert not any(m.training for m in model.backbone.body.modules())
    with pytest.raises(ConfigError, match="frozen_stages"):
        apply_freezing(model.backbone, frozen_stages=5, norm_eval=False)


# ----------------------------------------------------------------------------------------------------------
# A real training step


def train_steps(model: TinyDetector, steps: int = 2) -> None:
    opt = build_optimizer(model, "sgd", lr=0.1, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        model.train()
        model(torch.randn(2, 3, 64, 64, generator=gen)).backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("norm_eval", [False, True])
def test_frozen_stages_receive_no_updates_and_their_statistics_do_not_move(norm_eval):
    torch.manual_seed(0)
    model = detector("torchvision:resnet18")
    apply_freezing(model.backbone, frozen_stages=1, norm_eval=norm_eval)
    frozen = frozen_names(model.backbone, ("conv1.", "bn1.", "layer1."))
    before = {k: v.clone() for k, v in model.backbone.body.state_dict().items()}

    train_steps(model)
    after = model.backbone.body.state_dict()
    for key, value in before.items():
        layer = key.rsplit(".", 1)[0]
        frozen_layer = any(p.startswith(layer + ".") for p in frozen)
        stats = key.endswith(("running_mean", "running_var", "num_batches_tracked"))
        unchanged = torch.equal(value, after[key])
        if frozen_layer or (stats and norm_eval):
            assert unchanged, f"{key} moved"
        elif not key.endswith("num_batches_tracked"):
            assert not unchanged, f"{key} did not train"


def test_frozen_backbone_trains_under_ddp_without_unused_parameter_errors(tmp_path):
    import torch.distributed as dist

    model = detector("torchvision:resnet18")
    apply_freezing(model.backbone, frozen_stages=2, norm_eval=True)  # freeze first, then wrap
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)  # find_unused_parameters=False, the fast default
        opt = build_optimizer(ddp, "sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)
        for _ in range(3):  # a parameter left without a gradient fails on the second iteration
            ddp.train()
            ddp(torch.randn(2, 3, 64, 64)).backward()
            opt.step()
            opt.zero_grad()
    finally:
        dist.destroy_process_group()
    assert not model.backbone.body.layer1.training and not model.backbone.body.bn1.training


# ----------------------------------------------------------------------------------------------------------
# Optimizer groups


def group_of(opt: torch.optim.Optimizer) -> dict[int, dict]:
    return {id(p): g for g in opt.param_groups for p in g["params"]}


@pytest.mark.parametrize("spec", ["convnext-tiny", "swin-tiny", "resnet50"])
def test_optimizer_holds_every_trainable_parameter_exactly_once(spec):
    model = detector(spec, "meta")
    apply_freezing(model.backbone, frozen_stages=1, norm_eval=False)
    opt = build_optimizer(model, "sgd", lr=0.01, momentum=0.937, weight_decay=5e-4, backbone_lr_mult=0.1)

    held = [id(p) for g in opt.param_groups for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(held) == len(set(held)) == len(trainable)
    assert set(held) == set(trainable)
    assert not any(id(p) in set(held) for p in model.parameters() if not p.requires_grad)

    groups = group_of(opt)
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        g = groups[id(p)]
        in_backbone = pname.startswith("backbone.")
        assert g["lr"] == g["initial_lr"] == pytest.approx(0.001 if in_backbone else 0.01), pname
        assert g["lr_mult"] == (0.1 if in_backbone else 1.0)
        leaf = pname.rsplit(".", 1)[-1]
        expected = "bias" if leaf == "bias" else "decay" if leaf == "weight" and p.ndim > 1 else "no_decay"
        assert g["kind"] == expected, pname
        assert g["weight_decay"] == (5e-4 if expected == "decay" else 0.0), pname
    named = dict(model.named_parameters())
    odd = [n for n in named if n.endswith(("gamma", "relative_position_bias_table"))]
    assert bool(odd) == (spec != "resnet50")
    assert all(groups[id(named[n])]["kind"] == "no_decay" for n in odd if named[n].requires_grad)
    assert all(g["nesterov"] and g["momentum"] == 0.937 for g in opt.param_groups)


def test_convnext_gamma_is_trained():
    torch.manual_seed(0)
    model = detector("timm:convnext_atto")
    opt = build_optimizer(model, "adamw", lr=0.01, momentum=0.9, weight_decay=0.05)
    assert all(g["betas"] == (0.9, 0.999) for g in opt.param_groups)
    gammas = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith(".gamma")}
    assert gammas
    model(torch.randn(2, 3, 64, 64)).backward()
    opt.step()
    named = dict(model.named_parameters())
    assert all(not torch.equal(named[n], v) for n, v in gammas.items())


def test_optimizer_rejects_bad_settings():
    model = nn.Sequential(nn.Conv2d(3, 4, 1))
    with pytest.raises(ConfigError, match="not one of"):
        build_optimizer(model, "adam", lr=0.01, momentum=0.9, weight_decay=0.0)
    with pytest.raises(ConfigError, match="backbone-lr-mult"):
        build_optimizer(model, "sgd", lr=0.01, momentum=0.9, weight_decay=0.0, backbone_lr_mult=-1)
    model.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer(model, "sgd", lr=0.01, momentum=0.9, weight_decay=0.0)
