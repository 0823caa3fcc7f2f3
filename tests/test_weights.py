"""Pretrained weights as users have them: every supported layout loads exactly, unsafe or unmatched files stop the run.

Each checkpoint is built here from the real model definition (key names and shapes of the library's own model,
random values), renamed into the layout of the library that publishes it with a table written for this test, and
saved the way that library saves it. Loading then goes through the real path: source -> file -> layout -> body.
Afterwards every tensor of the body must equal, bit for bit, the tensor it came from. Nothing touches the network.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

from yoloswap.backbones.sources import build_backbone
from yoloswap.backbones.weights import LoadReport, hub_cache_path, load_backbone_weights
from yoloswap.errors import CheckpointError, WeightsError
from yoloswap.backbones.resolve import resolve_backbone


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """A private, empty torch hub cache and no downloads: a test that tries one fails."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


# ----------------------------------------------------------------------------------------------------------
# Source checkpoints from the real model definitions


def random_state(model_state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values with the real keys, shapes and dtypes (float tensors normal, integer buffers small ints)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, t in model_state.items():
        if t.dtype.is_floating_point:
            out[key] = torch.randn(t.shape, generator=gen, dtype=t.dtype)
        else:
            out[key] = torch.randint(0, 50, t.shape, generator=gen, dtype=t.dtype)
    return out


def timm_state(name: str, **kwargs) -> dict[str, torch.Tensor]:
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, **kwargs)
    return random_state(model.state_dict())


def torchvision_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None)
    return random_state(model.state_dict(), seed)


def assert_loaded_exactly(backbone, expected: dict[str, torch.Tensor]) -> None:
    """Every tensor of the body (BatchNorm step counters aside) equals its source tensor exactly."""
    body = backbone.body.state_dict()
    keys = [k for k in body if not k.endswith("num_batches_tracked")]
    assert keys, "empty body"
    for key in keys:
        assert key in expected, f"test table has no source for {key}"
        source = expected[key].to(body[key].dtype).reshape(body[key].shape)
        assert torch.equal(body[key], source), f"{key} differs from its source tensor"


def assert_complete(report: LoadReport) -> None:
    assert report.loaded == report.total > 0
    assert report.missing == [] and report.mismatched == []


# Test-side renaming tables (written from each library's published layout, independent of yoloswap's key maps).


def timm_convnext_to_official(key: str) -> str:
    parts, leaf = key.split("."), key.split(".")[-1]
    if parts[0] == "stem":  # stem.0 conv, stem.1 norm
        return f"downsample_layers.0.{parts[1]}.{leaf}"
    if parts[0] == "stages" and parts[2] == "downsample":
        return f"downsample_layers.{parts[1]}.{parts[3]}.{leaf}"
    if parts[0] == "stages" and parts[2] == "blocks":
        layer = ".".join(parts[4:-1])  # "" for the block's own gamma
        official = {"conv_dw": "dwconv.", "norm": "norm.", "mlp.fc1": "pwconv1.", "mlp.fc2": "pwconv2.", "": ""}
        return f"stages.{parts[1]}.{parts[3]}.{official[layer]}{leaf}"
    if key.startswith("head.norm."):
        return f"norm.{leaf}"
    if key.startswith("head.fc."):
        return f"head.{leaf}"
    raise AssertionError(f"no official name for timm key {key}")


def official_convnext_to_mmcls(key: str) -> str:
    """mmcls: same structure under ``backbone.``, depthwise/pointwise names, final norm ``norm3``, head ``head.fc``."""
    if key.startswith("head."):
        return "head.fc." + key.split(".")[-1]
    if key.startswith("norm."):
        return "backbone.norm3." + key.split(".")[-1]
    key = key.replace(".dwconv.", ".depthwise_conv.").replace(".pwconv1.", ".pointwise_conv1.")
    return "backbone." + key.replace(".pwconv2.", ".pointwise_conv2.")


def timm_swin_to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official Swin: patch merging closes stage i (timm opens stage i+1 with it); index and mask buffers saved."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            key = ".".join(["layers", str(int(parts[1]) - 1), *parts[2:]])
        elif key.startswith("head.fc."):
            key = "head." + parts[-1]
        out[key] = value
        if key.endswith(".attn.relative_position_bias_table"):
            block = key.split(".attn.")[0]
            out[f"{block}.attn.relative_position_index"] = torch.randint(0, 169, (49, 49))
            if int(parts[3]) % 2 == 1:  # shifted-window blocks keep their attention mask
                out[f"{block}.attn_mask"] = torch.zeros(4, 49, 49)
    return out


# mmcls MobileNetV3-Small: (in, mid, with_se) per InvertedResidual, from its arch table.
MMCLS_MBV3_SMALL = [(16, 16, True), (16, 72, False), (24, 88, False), (24, 96, True), (40, 240, True),
                    (40, 240, True), (40, 120, True), (48, 144, True), (48, 288, True), (96, 576, True),
                    (96, 576, True)]


def mmcls_mobilenetv3_small_names() -> list[str]:
    """Key names of mmcls MobileNetV3-Small in state-dict order: ConvModules are ``conv`` + ``bn``."""

    def conv_module(prefix: str) -> list[str]:
        bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
        return [f"{prefix}.conv.weight"] + [f"{prefix}.bn.{b}" for b in bn]

    names = conv_module("layer0")
    for i, (cin, mid, se) in enumerate(MMCLS_MBV3_SMALL, start=1):
        if mid != cin:
            names += conv_module(f"layer{i}.expand_conv")
        names += conv_module(f"layer{i}.depthwise_conv")
        if se:
            names += [f"layer{i}.se.conv{j}.conv.{p}" for j in (1, 2) for p in ("weight", "bias")]
        names += conv_module(f"layer{i}.linear_conv")
    return names + conv_module("layer12")


def build(spec: str):
    preset = resolve_backbone(spec)
    return preset, build_backbone(preset)


def place_in_hub_cache(url: str, obj: dict) -> Path:
    path = hub_cache_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


# ----------------------------------------------------------------------------------------------------------
# Every preset's own weights entry, from a pre-filled cache


def test_resnet50_preset_loads_torchvision_weights_from_the_hub_cache():
    import torchvision

    preset, backbone = build("resnet50")
    source = torchvision_state("resnet50")
    cached = place_in_hub_cache(torchvision.models.ResNet50_Weights.DEFAULT.url, source)
    assert cached.parent == Path(torch.hub.get_dir()) / "checkpoints"

    report = load_backbone_weights(backbone, preset.weights, preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, source)
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]  # the classifier has no place in the body
    assert report.to_dict()["loaded"] == report.total and report.source == "torchvision://resnet50"


def test_convnext_tiny_preset_loads_the_mmcls_checkpoint():
    preset, backbone = build("convnext-tiny")
    source = timm_state("convnext_tiny")
    mmcls = {official_convnext_to_mmcls(timm_convnext_to_official(k)): v for k, v in source.items()}
    assert any(".depthwise_conv." in k for k in mmcls) and all(k.startswith(("backbone.", "head.")) for k in mmcls)
    place_in_hub_cache(preset.weights, {"meta": {"epoch": 300, "mmcls_version": "0.20.1"}, "state_dict": mmcls})

    report = load_backbone_weights(backbone, preset.weights, preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, source)
    assert report.prefix == "backbone."
    assert "head.fc.weight" in report.ignored  # the classifier head is not the backbone


def test_swin_tiny_preset_loads_the_official_release():
    preset, backbone = build("swin-tiny")
    source = timm_state("swin_tiny_patch4_window7_224")
    official = timm_swin_to_official(source)
    assert "layers.0.downsample.reduction.weight" in official and "layers.3.downsample.norm.weight" not in official
    place_in_hub_cache(preset.weights, {"model": official})

    report = load_backbone_weights(backbone, preset.weights, preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, source)
    assert any(k.endswith("relative_position_index") for k in report.ignored)  # recomputed by the model
    assert not any("relative_position_index" in k for k in report.unexpected)


def test_mobilenetv3_small_preset_loads_the_mmcls_checkpoint():
    preset, backbone = build("mobilenetv3-small")
    source = torchvision_state("mobilenet_v3_small")
    features = [k for k in source if k.startswith("features.")]
    names = mmcls_mobilenetv3_small_names()
    assert len(names) == len(features)
    mmcls = {}
    for mm, tv in zip(names, features, strict=True):
        assert mm.rsplit(".", 1)[1] == tv.rsplit(".", 1)[1], (mm, tv)
        mmcls["backbone." + mm] = source[tv]
    mmcls["head.layers.0.fc.weight"] = source["classifier.0.weight"]
    place_in_hub_cache(preset.weights, {"meta": {}, "state_dict": mmcls})

    report = load_backbone_weights(backbone, preset.weights, preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, source)
    assert any(k.startswith("backbone.layer12.") for k in report.unexpected)  # the 576-channel conv is not tapped


def test_mocov3_preset_loads_the_mmselfsup_checkpoint_and_not_its_momentum_encoder():
    preset, backbone = build("mocov3-resnet50")
    base = {k: v for k, v in torchvision_state("resnet50", seed=1).items() if not k.startswith("fc.")}
    momentum = torchvision_state("resnet50", seed=2)
    state = {f"backbone.{k}": v for k, v in base.items()}
    state |= {f"momentum_encoder.module.0.{k}": v for k, v in momentum.items() if not k.startswith("fc.")}
    state |= {"neck.mlp.0.weight": torch.randn(16, 2048), "head.predictor.mlp.0.weight": torch.randn(16, 16)}
    place_in_hub_cache(preset.weights, {"meta": {"epoch": 800}, "state_dict": state})

    report = load_backbone_weights(backbone, preset.weights, preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, base)
    assert report.prefix == "backbone." and report.unexpected == []
    assert any(k.startswith("momentum_encoder.") for k in report.ignored)


def test_efficientnet_b1_preset_loads_timm_weights_from_the_hugging_face_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from safetensors.torch import save_file

    preset, backbone = build("efficientnet-b1")
    assert preset.weights == "timm://efficientnet_b1.ft_in1k"
    source = timm_state("efficientnet_b1")
    cache = tmp_path / "hf"
    repo = cache / "models--timm--efficientnet_b1.ft_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.items()}, repo / "snapshots" / commit / "model.safetensors")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    report = load_backbone_weights(backbone, preset.weights, preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, source)
    assert report.file.endswith("model.safetensors")


def test_yolov5_presets_train_from_scratch():
    preset, backbone = build("yolov5n")
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    assert preset.weights == "none"
    assert load_backbone_weights(backbone, preset.weights, preset) is None
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


# ----------------------------------------------------------------------------------------------------------
# Other layouts, local paths and file:// URLs (small models with the same layouts)


def moco_v3_official(base: dict, momentum: dict) -> dict:
    """The official MoCo v3 release: a DDP-trained model with twin encoders and a predictor."""
    state = {f"module.base_encoder.{k}": v for k, v in base.items()}
    state |= {f"module.momentum_encoder.{k}": v for k, v in momentum.items()}
    state |= {"module.predictor.0.weight": torch.randn(32, 16), "module.predictor.1.weight": torch.randn(32)}
    return {"epoch": 300, "arch": "resnet50", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_official_moco_v3_loads_the_base_encoder_not_the_momentum_encoder(tmp_path, as_url):
    preset, backbone = build("torchvision:resnet18")
    base, momentum = torchvision_state("resnet18", seed=1), torchvision_state("resnet18", seed=2)
    path = tmp_path / "r-50-1000ep.pth.tar"
    torch.save(moco_v3_official(base, momentum), path)

    report = load_backbone_weights(backbone, path.as_uri() if as_url else str(path), preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, base)
    assert report.prefix == "module.base_encoder."
    assert not any("momentum" in k for k in report.unexpected)
    assert sorted(report.unexpected) == ["module.base_encoder.fc.bias", "module.base_encoder.fc.weight"]


def test_official_convnext_release_loads_into_timm_convnext(tmp_path):
    preset, backbone = build("timm:convnext_atto")
    source = timm_state("convnext_atto")
    path = tmp_path / "convnext_atto_1k_224.pth"
    torch.save({"model": {timm_convnext_to_official(k): v for k, v in source.items()}}, path)

    report = load_backbone_weights(backbone, path.as_uri(), preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, source)
    assert "official ConvNeXt" in report.layout


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "module", "ema", None])
def test_wrappers_and_module_prefix_are_unwrapped(tmp_path, wrapper):
    preset, backbone = build("torchvision:resnet18")
    source = torchvision_state("resnet18", seed=3)
    state = {f"module.{k}": v for k, v in source.items()}  # saved from a DataParallel/DDP model
    path = tmp_path / "resnet18.pt"
    torch.save({wrapper: state, "epoch": 3} if wrapper else state, path)
    report = load_backbone_weights(backbone, str(path), preset)
    assert_complete(report)
    assert_loaded_exactly(backbone, source)


def test_safetensors_files_load(tmp_path):
    from safetensors.torch import save_file

    preset, backbone = build("torchvision:resnet18")
    source = torchvision_state("resnet18", seed=4)
    path = tmp_path / "resnet18.safetensors"
    save_file(source, path)
    assert_complete(load_backbone_weights(backbone, str(path), preset))
    assert_loaded_exactly(backbone, source)


def test_half_precision_checkpoint_is_cast_to_the_model_dtype_only(tmp_path):
    preset, backbone = build("torchvision:resnet18")
    source = {k: v.half() if v.is_floating_point() else v for k, v in torchvision_state("resnet18").items()}
    path = tmp_path / "half.pth"
    torch.save(source, path)
    assert_complete(load_backbone_weights(backbone, str(path), preset))
    assert all(p.dtype == torch.float32 for p in backbone.parameters())
    assert_loaded_exactly(backbone, source)  # compares after the same fp16 -> fp32 cast


# ----------------------------------------------------------------------------------------------------------
# Failures: nothing loads silently


def test_checkpoint_matching_nothing_is_an_error_and_changes_nothing(tmp_path):
    preset, backbone = build("torchvision:resnet18")
    before = {k: v.clone() for k, v in backbone.body.state_dict().items()}
    path = tmp_path / "convnext.pth"
    torch.save(timm_state("convnext_atto"), path)
    with pytest.raises(WeightsError, match="match none of the"):
        load_backbone_weights(backbone, str(path), preset, min_fraction=0.0)
    assert all(torch.equal(before[k], v) for k, v in backbone.body.state_dict().items())


def test_partial_checkpoint_stops_the_run_unless_a_lower_fraction_is_allowed(tmp_path):
    preset, backbone = build("torchvision:resnet18")
    before = {k: v.clone() for k, v in backbone.body.state_dict().items()}
    source = torchvision_state("resnet18")
    partial = {k: v for k, v in source.items() if not k.startswith("layer4.")}
    partial["conv1.weight"] = torch.randn(64, 3, 3, 3)  # right name, wrong shape
    path = tmp_path / "partial.pth"
    torch.save(partial, path)

    with pytest.raises(WeightsError, match=r"only \d+/\d+ tensors .*missing 'layer4\.0\.") as err:
        load_backbone_weights(backbone, str(path), preset)
    assert "conv1.weight" in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in backbone.body.state_dict().items())

    report = load_backbone_weights(backbone, str(path), preset, min_fraction=0.5)
    assert report.mismatched == [("conv1.weight", (64, 3, 3, 3), (64, 3, 7, 7))]
    assert report.missing and all(k.startswith("layer4.") for k in report.missing)
    assert report.loaded + len(report.missing) + len(report.mismatched) == report.total
    d = report.to_dict()
    assert d["mismatched"] == [["conv1.weight", [64, 3, 3, 3], [64, 3, 7, 7]]]
    assert set(d) >= {"loaded", "total", "missing", "unexpected", "mismatched", "source"}
    assert "loaded" in report.summary_line() and "missing" in report.summary_line()


class Payload:
    """Pickles as a call to ``os.mkdir``: unpickling it unsafely would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def test_pickle_with_a_code_payload_is_refused_and_never_runs(tmp_path):
    preset, backbone = build("torchvision:resnet18")
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": torchvision_state("resnet18"), "extra": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="arbitrary unpickling"):
        load_backbone_weights(backbone, str(path), preset)
    assert not marker.exists()


def test_download_failure_offline_says_how_to_proceed(monkeypatch):
    preset, backbone = build("mobilenetv3-small")

    def unreachable(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(WeightsError, match="offline") as err:
        load_backbone_weights(backbone, preset.weights, preset)
    message = str(err.value)
    assert str(hub_cache_path(preset.weights)) in message
    assert "--weights PATH" in message and "--weights none" in message
    assert not hub_cache_path(preset.weights).exists()


def test_https_weights_are_downloaded_once_into_the_hub_cache_with_their_hash_checked(monkeypatch):
    preset, backbone = build("torchvision:resnet18")
    source = torchvision_state("resnet18")
    url = "https://example.org/models/resnet18-f37072fd.pth"
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, Path(dst), hash_prefix))
        torch.save(source, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert_complete(load_backbone_weights(backbone, url, preset, progress=False))
    assert_complete(load_backbone_weights(backbone, url, preset, progress=False))
    assert calls == [(url, Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth", "f37072fd")]
    assert_loaded_exactly(backbone, source)


def test_hash_mismatch_is_an_error(monkeypatch):
    preset, backbone = build("torchvision:resnet18")

    def bad_hash(url, dst, hash_prefix=None, progress=True):
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "deadbeef")')

    monkeypatch.setattr(torch.hub, "download_url_to_file", bad_hash)
    with pytest.raises(WeightsError, match="checksum"):
        load_backbone_weights(backbone, "https://example.org/resnet18-f37072fd.pth", preset)


def test_timm_weights_offline_and_not_cached_say_how_to_proceed(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf"))
    preset, backbone = build("timm:convnext_atto")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE") as err:
        load_backbone_weights(backbone, "timm://convnext_atto.d2_in1k", preset)
    assert "--weights none" in str(err.value)


@pytest.mark.parametrize(
    "source, message",
    [
        ("torchvision://resnet5O", "no model 'resnet5O'; did you mean 'resnet50'"),
        ("torchvision://resnet18.IMAGENET1K_V9", "choose from IMAGENET1K_V1"),
        ("timm://convnext_atto.no_such_tag", "no such pretrained tag"),
        ("/nowhere/resnet18.pth", "not found"),
        ("s3://bucket/resnet18.pth", "unsupported scheme"),
    ],
)
def test_bad_sources_name_the_problem(source, message):
    preset, backbone = build("torchvision:resnet18")
    with pytest.raises(WeightsError, match=message):
        load_backbone_weights(backbone, source, preset)
