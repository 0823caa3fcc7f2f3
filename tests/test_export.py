"""Export: the ONNX file computes what the PyTorch detector computes, carries its metadata, and predict/val run it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from yoloswap.deploy.export import (
    PARITY_ATOL_BOXES,
    PARITY_ATOL_SCORES,
    ExportSpec,
    ExportWrapper,
    export_model,
    fixed_size_nms,
    read_metadata,
)
from yoloswap.errors import UsageError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

NAMES = ["red", "green", "blue"]


def detector(backbone: str, size: int = 64, seed: int = 0):
    from yoloswap.assembly import build_detector
    from yoloswap.backbones.resolve import resolve_backbone

    torch.manual_seed(seed)
    model, plan = build_detector(resolve_backbone(backbone), len(NAMES), (size, size))
    return model.eval(), plan


def write_checkpoint(path, backbone: str = "yolov5n", size: int = 64):
    """A detector checkpoint as the trainer writes it, with random weights (no training needed)."""
    from yoloswap.checkpoint import save_checkpoint
    from yoloswap.assembly import CHECKPOINT_FORMAT
    from yoloswap.config.options import TrainOptions
    from yoloswap.backbones.resolve import resolve_backbone

    model, plan = detector(backbone, size)
    options = TrainOptions(backbone=backbone, img_size=size, weights="none")
    save_checkpoint({
        "format": CHECKPOINT_FORMAT, "epoch": 0, "plan": plan.to_dict(), "names": NAMES, "category_ids": None,
        "config": {"preset": resolve_backbone(backbone).to_dict(), "options": options.to_dict()},
        "model": model.state_dict(), "ema": None,
    }, path)
    return path, model


@pytest.mark.parametrize("backbone", ["yolov5n", "convnext-tiny", "swin-tiny"])
def test_onnx_runtime_output_equals_pytorch_within_tolerance(tmp_path, backbone):
    model, _ = detector(backbone)
    path = export_model(model, NAMES, backbone, "onnx", ExportSpec(img_size=64, batch=2), tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)))

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 255  # 0-255 RGB, like predict
    with torch.no_grad():
        expected = model.infer(images / 255).numpy()  # (2, P, 4 + nc)
    got = ort.InferenceSession(str(path)).run(None, {"images": images.numpy()})[0]
    assert got.shape == expected.shape == (2, 3 * (8 * 8 + 4 * 4 + 2 * 2), 4 + len(NAMES))
    assert np.abs(got[..., :4] - expected[..., :4]).max() < PARITY_ATOL_BOXES
    assert np.abs(got[..., 4:] - expected[..., 4:]).max() < PARITY_ATOL_SCORES


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["yolov5s", "efficientnet-b1", "mobilenetv3-small", "resnet50", "mocov3-resnet50",
                                      "timm:resnet18", "torchvision:mobilenet_v3_small"])
def test_every_preset_and_library_backbones_export(tmp_path, backbone):
    from yoloswap.deploy.export import check_onnx_parity

    model, _ = detector(backbone)
    spec = ExportSpec(img_size=64)
    path = export_model(model, NAMES, backbone, "onnx", spec, tmp_path / "m.onnx")
    report = check_onnx_parity(model, path, spec)  # raises beyond tolerance
    assert report["max_abs_boxes"] < PARITY_ATOL_BOXES


def test_the_file_carries_names_strides_size_and_version(tmp_path):
    model, _ = detector("yolov5n")
    path = export_model(model, NAMES, "yolov5n", "onnx", ExportSpec(img_size=64), tmp_path / "m.onnx")
    meta = read_metadata(path)
    assert meta["names"] == NAMES and meta["strides"] == [8, 16, 32] and meta["img_size"] == 64
    assert meta["backbone"] == "yolov5n" and meta["head"] and meta["yoloswap_version"]
    assert meta["nms"] is None


def test_a_dynamic_export_runs_other_batch_sizes_and_image_shapes(tmp_path):
    model, _ = detector("yolov5n")
    path = export_model(model, NAMES, "yolov5n", "onnx", ExportSpec(img_size=64, dynamic=True), tmp_path / "d.onnx")
    images = torch.rand(3, 3, 96, 128) * 255
    got = ort.InferenceSession(str(path)).run(None, {"images": images.numpy()})[0]
    with torch.no_grad():
        expected = model.infer(images / 255).numpy()
    assert got.shape == expected.shape == (3, 3 * (12 * 16 + 6 * 8 + 3 * 4), 7)
    assert np.abs(got - expected).max() < PARITY_ATOL_BOXES


def test_torchscript_export_loads_without_yoloswap_and_keeps_metadata(tmp_path):
    model, _ = detector("yolov5n")
    path = export_model(model, NAMES, "yolov5n", "torchscript", ExportSpec(img_size=64), tmp_path / "m.torchscript")
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(path))(images), model.infer(images / 255), atol=1e-4)
    assert read_metadata(path)["names"] == NAMES


class FixedRows(torch.nn.Module):
    """A stand-in detector whose ``infer`` returns known rows: two overlapping boxes of class 0, one of class 1."""

    def __init__(self):
        super().__init__()
        rows = torch.tensor([[10, 10, 50, 50, 0.9, 0.1],
                             [12, 12, 52, 52, 0.8, 0.0],   # IoU ~0.83 with the first, same class: suppressed
                             [12, 12, 52, 52, 0.0, 0.7],   # same place, other class: kept
                             [60, 60, 90, 90, 0.1, 0.05]])  # below conf: dropped
        self.register_buffer("rows", rows)

    def infer(self, images01):
        return self.rows.expand(images01.shape[0], -1, -1) + 0 * images01.mean()  # keep the input in the graph


def test_nms_in_the_graph_gives_fixed_size_padded_detections(tmp_path):
    spec = ExportSpec(img_size=64, batch=2, nms=True, conf=0.25, iou=0.45, max_det=5)
    expected = torch.tensor([[10, 10, 50, 50, 0.9, 0], [12, 12, 52, 52, 0.7, 1]] + [[0] * 6] * 3, dtype=torch.float32)
    assert torch.allclose(fixed_size_nms(FixedRows().rows, 0.25, 0.45, 5), expected)

    path = tmp_path / "nms.onnx"
    torch.onnx.export(ExportWrapper(FixedRows(), spec).eval(), (torch.zeros(2, 3, 64, 64),), str(path),
                      input_names=["images"], output_names=["output"], opset_version=17, dynamo=False)
    got = ort.InferenceSession(str(path)).run(None, {"images": np.zeros((2, 3, 64, 64), np.float32)})[0]
    assert got.shape == (2, 5, 6)
    np.testing.assert_allclose(got[0], expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(got[1], expected.numpy(), atol=1e-6)


def test_nms_export_of_a_detector_matches_pytorch(tmp_path):
    model, _ = detector("yolov5n")
    spec = ExportSpec(img_size=64, batch=1, nms=True, conf=0.001, max_det=10)
    path = export_model(model, NAMES, "yolov5n", "onnx", spec, tmp_path / "n.onnx")
    images = torch.rand(1, 3, 64, 64) * 255
    got = ort.InferenceSession(str(path)).run(None, {"images": images.numpy()})[0]
    with torch.no_grad():
        expected = ExportWrapper(model, spec)(images).numpy()
    assert got.shape == (1, 10, 6)
    np.testing.assert_allclose(got, expected, atol=PARITY_ATOL_BOXES)
    assert read_metadata(path)["nms"] == {"conf": 0.001, "iou": 0.45, "max_det": 10}


def test_bad_export_options_are_one_line_errors(tmp_path):
    model, _ = detector("yolov5n")
    with pytest.raises(UsageError, match="--img-size must be a positive multiple of 32"):
        export_model(model, NAMES, "yolov5n", "onnx", ExportSpec(img_size=50), tmp_path / "m.onnx")
    with pytest.raises(UsageError, match="--format 'tflite'"):
        export_model(model, NAMES, "yolov5n", "tflite", ExportSpec(img_size=64), tmp_path / "m.tflite")
    with pytest.raises(UsageError, match="--nms and --dynamic"):
        export_model(model, NAMES, "yolov5n", "onnx", ExportSpec(img_size=64, nms=True, dynamic=True), tmp_path / "x")


def test_export_without_the_extras_says_what_to_install(cli, tmp_path, monkeypatch):
    import importlib.util

    weights, _ = write_checkpoint(tmp_path / "best.pt")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    code, _, err = cli("export", "--weights", str(weights))
    assert code != 0
    assert err.strip().splitlines()[-1] == 'Error: onnxruntime not installed; install the export extras: pip install "yoloswap[export]"'


def test_onnx_through_predict_and_val_equals_the_checkpoint(cli, tmp_path):
    from tests.make_data import ultralytics_set

    weights, _ = write_checkpoint(tmp_path / "best.pt")
    code, out, err = cli("export", "--weights", str(weights), "--batch", "2")
    assert code == 0, err
    assert "ONNX Runtime vs PyTorch" in out and (tmp_path / "best.onnx").is_file()

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    images = tmp_path / "data" / "images" / "val"  # 3 images: a batch of 2 and a padded one
    results = {}
    for name in ("best.pt", "best.onnx"):
        folder = tmp_path / f"pred_{name}"
        code, _, err = cli("predict", "--weights", str(tmp_path / name), "--source", str(images), "--out",
                           str(folder), "--conf", "0.001")
        assert code == 0, err
        results[name] = json.loads((folder / "predictions.json").read_text())
    pt, ox = results["best.pt"], results["best.onnx"]
    assert [r["image"] for r in pt] == [r["image"] for r in ox]
    assert sum(len(r["detections"]) for r in pt) > 0
    for a, b in zip(pt, ox):
        assert len(a["detections"]) == len(b["detections"])
        for da, db in zip(a["detections"], b["detections"]):
            assert da["class_id"] == db["class_id"]
            assert np.allclose(da["box"], db["box"], atol=0.05) and abs(da["score"] - db["score"]) < 1e-3

    code, _, err = cli("export", "--weights", str(weights), "--format", "torchscript")
    assert code == 0, err
    folder = tmp_path / "pred_ts"
    code, _, err = cli("predict", "--weights", str(tmp_path / "best.torchscript"), "--source", str(images), "--out",
                       str(folder), "--conf", "0.001")
    assert code == 0, err
    ts = json.loads((folder / "predictions.json").read_text())
    assert [len(r["detections"]) for r in ts] == [len(r["detections"]) for r in pt]

    maps = {}
    for name in ("best.pt", "best.onnx"):
        code, out, err = cli("val", "--weights", str(tmp_path / name), "--data", str(data), "--json", "--workers", "0")
        assert code == 0, err
        maps[name] = json.loads(out)
    assert maps["best.onnx"]["runtime"] == "onnxruntime"
    for key in ("map", "map50", "map75"):
        assert abs(maps["best.pt"][key] - maps["best.onnx"][key]) < 1e-4
