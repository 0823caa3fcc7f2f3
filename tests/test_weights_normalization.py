"""A run normalises images with the mean/std its weights were trained with: timm's pretrained config for a named
tag, torchvision's weights transforms, a weights file's own metadata; a preset's explicit ``normalize:`` wins.
All from local data: timm's and torchvision's registries and files the tests write (no download)."""

from __future__ import annotations

import io
import json

import pytest
import torch
import yaml
from rich.console import Console
from safetensors.torch import save_file

from tests.make_data import ultralytics_set
from yoloswap.backbones.normalization import weights_normalization
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.backbones.sources import build_backbone
from yoloswap.config.presets import IMAGENET_MEAN
from yoloswap.training.setup import _normalized_for_weights

HALF = (0.5, 0.5, 0.5)


def test_a_timm_tag_whose_pretrained_cfg_says_half_normalises_with_half():
    mean, std, origin = weights_normalization("timm://inception_v3.tv_in1k")  # timm's local registry
    assert mean == std == HALF and "pretrained_cfg" in origin
    preset = resolve_backbone("timm:inception_v3")
    import dataclasses

    preset = dataclasses.replace(preset, weights="timm://inception_v3.tv_in1k")
    lines = []
    resolved = _normalized_for_weights(preset, "timm:inception_v3", lines.append)
    assert resolved.normalize.mean == HALF and resolved.normalize.std == HALF
    assert "pretrained_cfg of inception_v3.tv_in1k" in lines[0]


def test_torchvision_weights_normalise_with_their_transforms():
    mean, std, _ = weights_normalization("torchvision://resnet18.IMAGENET1K_V1")
    assert mean == pytest.approx(IMAGENET_MEAN) and std == pytest.approx((0.229, 0.224, 0.225))


def test_a_presets_explicit_normalize_wins_over_the_weights(tmp_path):
    preset_file = tmp_path / "mine.yaml"
    data = resolve_backbone("convnext-tiny").to_dict()
    data.update(weights="timm://inception_v3.tv_in1k", normalize={"mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2]})
    preset_file.write_text(yaml.safe_dump(data))
    preset = resolve_backbone(str(preset_file))
    resolved = _normalized_for_weights(preset, str(preset_file), lambda line: None)
    assert resolved.normalize.mean == (0.4, 0.4, 0.4)


def test_a_weights_files_metadata_sets_the_normalisation_of_the_run_its_config_and_checkpoint(tmp_path):
    backbone = "timm:mobilenetv3_small_050"
    body = build_backbone(resolve_backbone(backbone)).body
    weights = tmp_path / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in body.state_dict().items()}, weights,
              metadata={"mean": json.dumps(HALF), "std": json.dumps([0.25, 0.25, 0.25])})
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    import yoloswap.training.loop as trainer
    from yoloswap.assembly import detector_from_checkpoint
    from yoloswap.checkpoint import load_checkpoint
    from yoloswap.config.options import TrainOptions

    options = TrainOptions(backbone=backbone, data=str(data), epochs=1, img_size=64, batch_size=2, nominal_batch=2,
                           workers=0, device="cpu", amp=False, weights=str(weights), autoanchor=False)
    trainer.train(options, out=tmp_path / "run", console=Console(file=io.StringIO()))
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["preset"]["normalize"] == {"mean": list(HALF), "std": [0.25, 0.25, 0.25]}
    path = tmp_path / "run" / "weights" / "last.pt"
    model = detector_from_checkpoint(load_checkpoint(path), path)[0]
    assert torch.equal(model.std.flatten(), torch.tensor([0.25] * 3))
