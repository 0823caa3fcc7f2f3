"""Windowed and position-table timm models (MaxViT, CoAtNet, Hiera, ...) train at the size the user asks for:
yoloswap builds them for it, records that in the run, and adapts pretrained position tables to it.

``timm:test_coatnet`` (0.5M parameters, a CoAtNet with relative-position attention) stands for the family: timm
builds it for 160x160, and as built it runs at no other size.
"""

from __future__ import annotations

import pytest
import torch

from tests.make_data import ultralytics_set
from yoloswap.backbones.sources import build_backbone
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.weights import load_backbone_weights
from yoloswap.checkpoint import load_checkpoint
from yoloswap.assembly import load_detector
from yoloswap.errors import YoloswapError
from yoloswap.backbones.probe import fit_to_size, probe, probe_backbone

MODEL = "timm:test_coatnet"


def test_a_windowed_model_is_built_for_the_requested_size_when_it_runs_only_at_its_own():
    preset = resolve_backbone(MODEL)
    with torch.device("meta"):
        with pytest.raises(YoloswapError, match="does not run on a 64x64 input"):
            probe_backbone(build_backbone(preset), (64, 64), preset.name)  # as timm builds it: 160x160 only
    fitted = fit_to_size(preset, (64, 64))
    assert fitted.model.kwargs == {"img_size": [64, 64]}
    with torch.device("meta"):
        assert probe_backbone(build_backbone(fitted), (64, 64), preset.name).strides == (8, 16, 32)
    assert probe(preset, (64, 64), "meta").channels == (64, 96, 128)  # probe-channels, info: the same rule


@pytest.mark.parametrize("name, size", [
    (MODEL, 160),  # its own size: left as timm builds it (pretrained tables keep their shapes)
    ("timm:resnet18", 640),  # any size already
    ("convnext-tiny", 640),  # a preset
    ("yolov5n", 96),  # yoloswap's own source has no size to set
])
def test_models_that_run_as_given_are_left_exactly_as_given(name, size):
    preset = resolve_backbone(name)
    assert fit_to_size(preset, (size, size)) is preset


def test_a_size_set_in_the_preset_is_never_overridden():
    import dataclasses

    preset = resolve_backbone(MODEL)
    pinned = dataclasses.replace(preset, model=dataclasses.replace(preset.model, kwargs={"img_size": [160, 160]}))
    assert fit_to_size(pinned, (64, 64)) is pinned  # the user's setting wins; the probe then says it does not run


def test_train_resume_and_predict_a_windowed_model_at_a_size_it_was_not_built_for(cli, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    run = tmp_path / "run"
    args = ("train", "--backbone", MODEL, "--data", str(data), "--img-size", "64", "--batch-size", "4",
            "--workers", "0", "--device", "cpu", "--out", str(run), "--no-autoanchor")
    code, _, err = cli(*args, "--epochs", "1")
    assert code == 0, err
    assert "built for 64x64 inputs" in err
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["config"]["preset"]["model"]["kwargs"] == {"img_size": [64, 64]}  # recorded: rebuilt the same
    model, preset, *_ = load_detector(run / "weights" / "best.pt")
    assert model(torch.zeros(1, 3, 64, 64))  # the rebuilt detector runs at the training size

    code, _, err = cli("train", "--resume", str(run), "--epochs", "2")
    assert code == 0, err
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 1  # 0-based: the second epoch ran

    code, _, err = cli("predict", "--weights", str(run / "weights" / "best.pt"), "--source",
                       str(data.parent / "images" / "val"), "--out", str(tmp_path / "pred"))
    assert code == 0, err

    for command in (("predict", "--source", str(data.parent / "images" / "val"), "--out", str(tmp_path / "p96")),
                    ("val", "--data", str(data)), ("export", "--format", "torchscript")):
        code, _, err = cli(command[0], "--weights", str(run / "weights" / "best.pt"), *command[1:], "--img-size", "96")
        assert code == 2 and "built for 64x64 inputs" in err and "use --img-size 64" in err, (command, err)
        assert "RuntimeError" not in err and len(err.strip().splitlines()) == 1


def test_pretrained_position_tables_are_resized_to_the_size_the_model_was_built_for(tmp_path):
    """A checkpoint made for 160x160 (timm's build) loads completely into the 64x64 build: timm's own filter
    resizes the relative-position tables; without it they would be reported as tensors of another shape."""
    preset = resolve_backbone(MODEL)
    as_pretrained = build_backbone(preset).body
    torch.save(as_pretrained.state_dict(), tmp_path / "coatnet160.pt")
    fitted = build_backbone(fit_to_size(preset, (64, 64)))
    tables = [k for k, v in fitted.body.state_dict().items() if "relative_position_bias_table" in k]
    assert tables and any(fitted.body.state_dict()[k].shape != as_pretrained.state_dict()[k].shape for k in tables)

    report = load_backbone_weights(fitted, str(tmp_path / "coatnet160.pt"), preset, progress=False)
    assert report.mismatched == [] and report.loaded == report.total
    same = [k for k, v in as_pretrained.state_dict().items() if "relative_position" not in k]
    assert all(torch.equal(fitted.body.state_dict()[k], as_pretrained.state_dict()[k]) for k in same)
