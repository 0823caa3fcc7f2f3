"""COCO YOLO detector files from YOLOv5, Ultralytics and MMYOLO load into yoloswap without running their code.

The files are written here the way those packages write them (pickled module objects under their real dotted
names, see tests/yolo_standins.py), so CI checks the loader, the key maps and the refusals without the packages.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

from tests.yolo_standins import V8_YAML, Model, real_names, save_like_release
from yoloswap.assembly import detector_from_checkpoint
from yoloswap.errors import CheckpointError
from yoloswap.foreign_detector import read_detector_file
from yoloswap.foreign_pickle import is_inert, module_tensors, read_foreign
from yoloswap.models.head import COCO_ANCHORS


def _reference(head: str, widen: float = 0.25, nc: int = 5, layout=None) -> Model:
    torch.manual_seed(0)
    model = Model(widen=widen, nc=nc, head=head, layout=layout).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # statistics away from 0/1, so a wrong BN mapping shows
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5), m.weight.uniform_(0.5, 1.5)
    return model.half().float()  # the values a half-precision release file holds


def _raw_as_yoloswap(raw: torch.Tensor, head: str) -> torch.Tensor:
    if head == "yolov8":
        return raw
    n, _, h, w = raw.shape  # YOLOv5's Detect views (N, 3*(5+nc), H, W) as (N, 3, H, W, 5+nc)
    return raw.view(n, 3, -1, h, w).permute(0, 1, 3, 4, 2)


@pytest.mark.parametrize("head,widen,preset", [("yolov5", 0.25, "yolov5n"), ("yolov8", 0.5, "yolov5s")])
def test_a_release_file_becomes_the_same_detector(tmp_path, head, widen, preset):
    reference = _reference(head, widen)
    path = tmp_path / "yolo.pt"
    save_like_release(reference, path, head)

    model, got_preset, plan, names, _ = detector_from_checkpoint(read_detector_file(path), path)

    assert (got_preset.name, plan.head, plan.num_classes) == (preset, head, 5)
    assert names == [f"coco{i}" for i in range(5)]
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        for want, got in zip(reference(x), model(x)):
            torch.testing.assert_close(got, _raw_as_yoloswap(want, head), rtol=0, atol=1e-5)
    if head == "yolov5":  # the file keeps anchors in grid units; yoloswap in pixels
        torch.testing.assert_close(model.head.anchors, torch.tensor(COCO_ANCHORS, dtype=torch.float32))


class Trap(torch.nn.Module):
    """A module whose own code must never run while loading: construction and unpickling both raise."""


def test_the_loader_runs_no_code_of_the_file_classes(tmp_path):
    trap = Trap()
    trap.scale = 3
    trap.weight = torch.nn.Parameter(torch.ones(2))
    path = tmp_path / "trap.pt"
    with real_names("yolov5"):
        Trap.__module__ = "models.common"
        sys.modules["models.common"].Trap = Trap
        try:
            torch.save({"model": trap}, path)
        finally:
            Trap.__module__ = __name__

    def explode(*args, **kwargs):
        raise AssertionError("class code ran")

    Trap.__init__, Trap.__setstate__, Trap.__reduce_ex__ = explode, explode, explode
    try:
        loaded = read_foreign(path)["model"]
    finally:
        del Trap.__init__, Trap.__setstate__, Trap.__reduce_ex__
    assert is_inert(loaded, "models.common.Trap") and loaded.attrs["scale"] == 3
    assert dict(module_tensors(loaded))["weight"].tolist() == [1.0, 1.0]


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil_file(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "yolov5s.pt"
    torch.save({"model": Evil(marker)}, path)
    return path, marker


def test_a_pickle_that_calls_code_is_refused_in_one_line(tmp_path):
    path, marker = _evil_file(tmp_path)
    with pytest.raises(CheckpointError, match=r"arbitrary unpickling \(it calls (posix|os)\.system\)") as info:
        read_foreign(path)
    assert len(str(info.value).splitlines()) == 1 and not marker.exists()
    with pytest.raises(CheckpointError):
        read_detector_file(path)
    assert not marker.exists()


def test_a_constructor_call_of_a_builtin_is_refused(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"model": _Getattr()}, path)
    with pytest.raises(CheckpointError, match="builtins.getattr"):
        read_foreign(path)


class _Getattr:
    def __reduce__(self):
        return getattr, ("abc", "upper")


@pytest.mark.parametrize("command", [
    ["val", "--weights", "{w}", "--data", "{d}"],
    ["predict", "--weights", "{w}", "--source", "{d}"],
    ["export", "--weights", "{w}"],
])
def test_every_command_refuses_a_malicious_file(cli, tmp_path, command):
    path, marker = _evil_file(tmp_path)
    code, out, err = cli(*[a.format(w=path, d=tmp_path) for a in command])
    assert code == 1 and err.startswith("Error: ") and len(err.strip().splitlines()) == 1, err
    assert "posix.system" in err or "os.system" in err
    assert not marker.exists()


def test_train_refuses_a_malicious_file(cli, tmp_path):
    from tests.make_data import ultralytics_set

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    path, marker = _evil_file(tmp_path)
    code, out, err = cli("train", "--backbone", "yolov5n", "--data", str(data), "--weights", str(path),
                         "--epochs", "1", "--img-size", "64", "--device", "cpu", "--out", str(tmp_path / "run"))
    assert code == 1 and "Error: " in err and "system" in err, err
    assert not marker.exists()


def test_val_and_predict_take_a_foreign_file_directly(cli, tmp_path):
    from tests.make_data import ultralytics_set

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    path = tmp_path / "yolov5n.pt"
    save_like_release(_reference("yolov5", nc=3), path, "yolov5")
    code, out, err = cli("val", "--weights", str(path), "--data", str(data), "--img-size", "64", "--json")
    assert code == 0, err
    code, out, err = cli("predict", "--weights", str(path), "--source", str(tmp_path / "data" / "images" / "val"),
                         "--img-size", "64", "--conf", "0.0001", "--out", str(tmp_path / "pred"))
    assert code == 0, err
    assert '"class": "coco' in (tmp_path / "pred" / "predictions.json").read_text()  # the file's own names


@pytest.mark.slow
def test_train_fine_tunes_from_a_yolov5_file_with_other_classes(cli, tmp_path):
    from tests.make_data import ultralytics_set
    from yoloswap.checkpoint import load_checkpoint

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)  # 3 classes; the file has 5
    reference = _reference("yolov5")
    path = tmp_path / "yolov5n.pt"
    save_like_release(reference, path, "yolov5")
    code, _, err = cli("train", "--weights", str(path), "--data", str(data), "--epochs", "1", "--img-size", "64",
                       "--batch-size", "4", "--workers", "0", "--device", "cpu", "--frozen-stages", "4",
                       "--out", str(tmp_path / "run"))
    assert code == 0, err
    log = " ".join(err.split())  # the console wraps long lines
    assert "YOLOv5 v6.1 yolov5n detector" in log and "(YOLOv5 v6.1); 6 of another shape re-initialised" in log
    ckpt = load_checkpoint(tmp_path / "run" / "weights" / "last.pt")
    state = ckpt["model"]
    assert ckpt["names"] == ["red", "green", "blue"] and state["head.convs.0.weight"].shape[0] == 3 * 8
    torch.testing.assert_close(state["backbone.body.stage4.1.cv3.conv.weight"],
                               reference.model[8].cv3.conv.weight)  # frozen: the file's tensors, unchanged
    torch.testing.assert_close(state["head.anchors"], torch.tensor(COCO_ANCHORS, dtype=torch.float32))
    recorded = ckpt["config"]["options"]  # the architecture the file chose, not the --backbone default
    assert (recorded["backbone"], recorded["head"]) == ("yolov5n", "yolov5")


# MMYOLO's names for the YOLOv5 v6.1 layers (mmyolo/models: YOLOv5CSPDarknet, YOLOv5PAFPN, YOLOv5HeadModule)
MMYOLO_LAYERS = {0: "backbone.stem", 1: "backbone.stage1.0", 2: "backbone.stage1.1", 3: "backbone.stage2.0",
                 4: "backbone.stage2.1", 5: "backbone.stage3.0", 6: "backbone.stage3.1", 7: "backbone.stage4.0",
                 8: "backbone.stage4.1", 9: "backbone.stage4.2", 10: "neck.reduce_layers.2",
                 13: "neck.top_down_layers.0.0", 14: "neck.top_down_layers.0.1", 17: "neck.top_down_layers.1",
                 18: "neck.downsample_layers.0", 20: "neck.bottom_up_layers.0", 21: "neck.downsample_layers.1",
                 23: "neck.bottom_up_layers.1", 24: "bbox_head.head_module"}
MMYOLO_PARTS = [(r"^cv1\.", "main_conv."), (r"^cv2\.", "short_conv."), (r"^cv3\.", "final_conv."),  # CSPLayer
                (r"^m\.(\d+)\.cv(\d)\.", r"blocks.\1.conv\2."), (r"^m\.(\d)\.(weight|bias)$", r"convs_pred.\1.\2")]


def _mmyolo_state(model: Model) -> dict:
    import re

    out = {}
    for key, value in model.state_dict().items():
        index, rest = key.split(".", 2)[1:]
        if rest == "anchors":
            continue  # MMYOLO keeps anchors in its config, not in the weights
        if index == "9":  # SPPFBottleneck
            rest = re.sub(r"^cv(\d)\.", r"conv\1.", rest)
        for pattern, repl in MMYOLO_PARTS:
            rest = re.sub(pattern, repl, rest)
        out[f"{MMYOLO_LAYERS[int(index)]}.{rest}"] = value
    return out


def test_an_mmyolo_state_dict_becomes_the_same_detector(tmp_path):
    reference = _reference("yolov5", widen=0.25, nc=3)
    path = tmp_path / "yolov5_n-v61_syncbn_fast_8xb16-300e_coco.pth"
    torch.save({"meta": {"dataset_meta": {"classes": ("cat", "dog", "cow")}}, "state_dict": _mmyolo_state(reference)},
               path)
    model, preset, plan, names, _ = detector_from_checkpoint(read_detector_file(path), path)
    assert (preset.name, plan.head, names) == ("yolov5n", "yolov5", ["cat", "dog", "cow"])
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for want, got in zip(reference(x), model(x)):
            torch.testing.assert_close(got, _raw_as_yoloswap(want, "yolov5"), rtol=0, atol=1e-5)


def test_a_file_of_another_detector_is_one_line(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not a yoloswap detector checkpoint, nor a YOLOv5"):
        read_detector_file(path)


@pytest.mark.parametrize("head", ["yolov5", "yolov8"])
def test_a_presets_weights_take_the_backbone_of_a_yolo_file(tmp_path, head):
    import dataclasses

    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.sources import build_backbone
    from yoloswap.backbones.weights import load_backbone_weights

    reference = _reference(head)
    path = tmp_path / "yolov5n.pt"
    save_like_release(reference, path, head)
    preset = dataclasses.replace(resolve_backbone("yolov5n"), weights=str(path))
    backbone = build_backbone(preset)
    report = load_backbone_weights(backbone, preset.weights, preset)  # all of the body, or an error
    assert report.loaded == report.total > 0
    torch.testing.assert_close(backbone.body.stage4[2].cv2.conv.weight,
                               reference.model[9].cv2.conv.weight)  # SPPF, layer 9 of the file


def test_a_presets_weights_refuse_a_malicious_file(tmp_path):
    import dataclasses

    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.sources import build_backbone
    from yoloswap.backbones.weights import load_backbone_weights

    path, marker = _evil_file(tmp_path)
    preset = dataclasses.replace(resolve_backbone("yolov5n"), weights=str(path))
    with pytest.raises(CheckpointError, match=r"arbitrary unpickling \(it calls"):
        load_backbone_weights(build_backbone(preset), preset.weights, preset)
    assert not marker.exists()


def _yolov8n_file(tmp_path):
    reference = _reference("yolov8", layout=V8_YAML)  # yolov8n: width 0.25, depth 0.33, 1024 cap
    path = tmp_path / "yolov8n.pt"
    save_like_release(reference, path, "yolov8")
    return reference, path


def test_an_ultralytics_yolov8_files_backbone_loads_into_the_yolov8_preset_and_computes_the_same(tmp_path):
    """Layers 0-9 of yolov8.yaml are yoloswap's C2f CSPDarknet under other names: loaded, it outputs what the
    file's layers 4, 6 and 9 output (the stand-in runs Ultralytics' wiring, not yoloswap's)."""
    import dataclasses

    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.sources import build_backbone
    from yoloswap.backbones.weights import load_backbone_weights

    reference, path = _yolov8n_file(tmp_path)
    preset = dataclasses.replace(resolve_backbone("yolov8n"), weights=str(path))
    backbone = build_backbone(preset).eval()
    report = load_backbone_weights(backbone, preset.weights, preset)
    assert report.loaded == report.total > 0
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want, y = [], x
        for index, layer in enumerate(reference.model[:10]):
            y = layer(y)
            if index in (4, 6, 9):  # P3, P4, P5
                want.append(y)
        got = backbone(x)
    assert len(got) == 3
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_an_ultralytics_yolov8_detector_is_not_read_as_a_detector_and_the_error_names_the_backbone_route(tmp_path):
    _, path = _yolov8n_file(tmp_path)
    with pytest.raises(CheckpointError, match=r"Ultralytics YOLOv8 detector, whose C2f neck yoloswap does not build"
                                              r".*yoloswap train --backbone yolov8n --weights "):
        read_detector_file(path)


@pytest.mark.slow
def test_train_starts_the_yolov8_preset_from_an_ultralytics_yolov8_files_backbone(cli, tmp_path):
    from tests.make_data import ultralytics_set
    from yoloswap.checkpoint import load_checkpoint

    reference, path = _yolov8n_file(tmp_path)
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    code, _, err = cli("train", "--backbone", "yolov8n", "--weights", str(path), "--data", str(data), "--epochs", "1",
                       "--img-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu",
                       "--frozen-stages", "4", "--out", str(tmp_path / "run"))
    assert code == 0, err
    state = load_checkpoint(tmp_path / "run" / "weights" / "last.pt")["model"]
    torch.testing.assert_close(state["backbone.body.stage4.1.main_conv.conv.weight"],
                               reference.model[8].cv1.conv.weight)  # frozen: the file's C2f at layer 8, unchanged

    # without --backbone, the one line says which preset takes the file, and no run folder is made
    code, _, err = cli("train", "--weights", str(path), "--data", str(data), "--epochs", "1", "--img-size", "64",
                       "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "other"))
    assert code == 1 and err.strip().splitlines()[-1].startswith("Error:")
    assert "yoloswap train --backbone yolov8n --weights" in " ".join(err.split())
    assert not (tmp_path / "other").exists()
