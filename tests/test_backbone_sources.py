"""Every library model either serves as a backbone or is refused in one line that says why; the table of
sources answers every "which source?" question; the optimizer recipe follows the layers, not the name."""

from __future__ import annotations

import random

import pytest
import torch

from yoloswap.backbones.construct import construct
from yoloswap.backbones.resolve import library_preset, resolve_backbone
from yoloswap.backbones.sources import SOURCES, get_source
from yoloswap.errors import UsageError, YoloswapError
from yoloswap.backbones.probe import probe

# torchvision classification models with no stride-8/16/32 pyramid at 640x640, and why (checked below).
TORCHVISION_REFUSED = {
    "alexnet": "no feature map is an exact fraction",
    "inception_v3": "no feature map is an exact fraction",
    "squeezenet1_0": "no feature map is an exact fraction",
    "squeezenet1_1": "no feature map is an exact fraction",
    "maxvit_t": "runs only at 224x224",  # works, at its own size (see test_fixed_size_model_works_at_its_size)
    "vit_b_16": "one stride only",
    "vit_b_32": "one stride only",
    "vit_h_14": "one stride only",
    "vit_l_16": "one stride only",
    "vit_l_32": "one stride only",
}


def _torchvision_sample() -> list[str]:
    """Every refused model, and one per family (the shortest name) of the rest.

    All 80 take about 15 minutes on 2 busy cores (RegNet-Y 128GF alone is built on the CPU: 644M parameters),
    too slow for every test run; ``bench/coverage.py`` probes all of them and records the result in
    docs/COMPATIBILITY.md.
    """
    import torchvision

    by_family: dict[str, list[str]] = {}
    for name in get_source("torchvision").models():
        family = torchvision.models.get_model_builder(name).__module__
        by_family.setdefault(family, []).append(name)
    picked = {min(names, key=lambda n: (len(n), n)) for names in by_family.values()}
    return sorted(picked | set(TORCHVISION_REFUSED))


@pytest.mark.parametrize("name", _torchvision_sample())
def test_torchvision_models_probe_or_are_refused_in_one_line(name):
    preset = library_preset("torchvision", name)
    if name in TORCHVISION_REFUSED:
        with pytest.raises(YoloswapError) as caught:
            probe(preset, (640, 640), "meta")
        message = str(caught.value)
        assert TORCHVISION_REFUSED[name] in message and "\n" not in message
        return
    result = probe(preset, (640, 640), "meta")
    assert result.strides == (8, 16, 32)
    assert all(c > 0 for c in result.channels) and result.params > 0


def test_regnet_builds_off_meta_and_probes():
    """The reported bug: RegNet computes its widths with .tolist(), impossible on meta; it is built on the CPU."""
    with torch.device("meta"):
        model = get_source("torchvision").create("regnet_y_400mf")
    assert all(p.is_meta for p in model.parameters())  # moved to meta after the CPU build
    assert probe(resolve_backbone("torchvision:regnet_y_400mf"), (640, 640), "meta").channels == (104, 208, 440)


def test_fixed_size_model_works_at_its_size():
    with pytest.raises(YoloswapError, match=r"does not run on a 640x640 input; it runs only at 224x224 \(e.g. --img-size 224\)"):
        probe(resolve_backbone("torchvision:maxvit_t"), (640, 640), "meta")
    assert probe(resolve_backbone("torchvision:maxvit_t"), (224, 224), "meta").channels == (128, 256, 512)


def test_a_library_failure_becomes_one_line_naming_the_model():
    def broken():
        raise AssertionError  # a library's bare assert: no message of its own

    with pytest.raises(UsageError, match=r"^timm:x cannot be built \(AssertionError in the model's own code\)$"):
        construct(broken, "timm:x")


def _small_timm_sample(k: int = 10, seed: int = 11) -> list[str]:
    import timm

    small = timm.list_models(["*tiny*", "*small*", "*nano*", "*pico*", "*atto*", "*femto*", "resnet18*", "*b0*"])
    return sorted(random.Random(seed).sample(small, k))


@pytest.mark.parametrize("name", _small_timm_sample())
def test_timm_channels_equal_feature_info(name):
    """The probe agrees with timm's own feature_info: the last feature at reductions 8, 16 and 32."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    info = model.feature_info
    declared = {}
    for f in info:
        declared[int(f["reduction"])] = int(f["num_chs"])  # later features of a reduction overwrite earlier ones
    size = model.pretrained_cfg["input_size"][1]
    size = size if size % 32 == 0 else 640
    preset = resolve_backbone(f"timm:{name}")
    if not {8, 16, 32} <= set(declared):
        with pytest.raises(UsageError, match="needs strides 8, 16 and 32"):
            probe(preset, (size, size), "meta")
        return
    assert probe(preset, (size, size), "meta").channels == (declared[8], declared[16], declared[32])


@pytest.mark.parametrize("source", ["timm", "torchvision"])
def test_optimizer_recipe_follows_the_layers_not_the_name(source):
    names = {"timm": ("resnext50_32x4d", "convnext_tiny", "swin_tiny_patch4_window7_224"),
             "torchvision": ("resnext50_32x4d", "convnext_tiny", "swin_t")}[source]
    resnext, convnext, swin = (resolve_backbone(f"{source}:{n}").optimizer for n in names)
    assert (resnext.name, resnext.lr, resnext.weight_decay) == ("sgd", 0.01, 5e-4)  # "next" in the name: still a CNN
    assert (convnext.name, convnext.lr, convnext.weight_decay) == ("adamw", 0.001, 0.05)  # LayerNorm
    assert swin.name == "adamw"  # attention


def test_unknown_source_gets_a_suggestion():
    with pytest.raises(UsageError, match=r"'tim' is not a backbone source.*did you mean 'timm'\?"):
        resolve_backbone("tim:resnet50")
    with pytest.raises(UsageError, match=r"unknown backbone source 'torchvison'.*did you mean 'torchvision'\?"):
        get_source("torchvison")


def test_the_table_builds_every_source():
    assert set(SOURCES) == {"timm", "torchvision", "yoloswap"}
    with torch.device("meta"):
        for source, name in (("timm", "resnet18"), ("torchvision", "resnet18"), ("yoloswap", "cspdarknet")):
            assert name in SOURCES[source].models()
            backbone = SOURCES[source].build(library_preset_spec(source, name), 0.0)
            assert backbone.source == source and len(backbone(torch.empty(1, 3, 64, 64))) == 3


def library_preset_spec(source: str, name: str):
    from yoloswap.config.presets import ModelSpec

    return ModelSpec(source=source, name=name)
