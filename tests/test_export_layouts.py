"""The YOLO deployment contracts: ``export --layout ultralytics`` (YOLOv8: 0-1 in, (B, 4 + nc, P) cx, cy, w, h,
Ultralytics metadata) and ``--layout yolov5`` (0-1 in, (B, P, 5 + nc) with objectness) give the same boxes as
yoloswap's own layout, and yoloswap's runtimes read all three."""

from __future__ import annotations

import ast
import dataclasses

import numpy as np
import pytest
import torch

from tests.test_export import NAMES, detector, write_checkpoint
from yoloswap.deploy.export import ExportSpec, export_model
from yoloswap.errors import UsageError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path, images):
    return ort.InferenceSession(str(path)).run(None, {"images": images.numpy()})[0]


def _xyxy(cxcywh):
    return np.concatenate((cxcywh[..., :2] - cxcywh[..., 2:4] / 2, cxcywh[..., :2] + cxcywh[..., 2:4] / 2), -1)


@pytest.mark.parametrize("backbone,head", [("yolov5n", "yolov8"),
                                          pytest.param("mobilenetv3-small", "yolov5", marks=pytest.mark.slow)])
def test_both_yolo_layouts_decode_to_the_yoloswap_rows(tmp_path, backbone, head):
    from yoloswap.assembly import detector_from_plan
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.sources import build_backbone

    _, plan = detector(backbone)
    preset = resolve_backbone(backbone)
    torch.manual_seed(0)
    model = detector_from_plan(build_backbone(preset), dataclasses.replace(plan, head=head), preset).eval()
    spec = ExportSpec(img_size=64, batch=2)
    files = {layout: export_model(model, NAMES, backbone, "onnx", dataclasses.replace(spec, layout=layout),
                                  tmp_path / f"{layout}.onnx") for layout in ("yoloswap", "ultralytics", "yolov5")}
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 255
    rows = _run(files["yoloswap"], pixels)  # (2, P, 4 + nc) from 0-255 input
    nc = len(NAMES)

    v8 = _run(files["ultralytics"], pixels / 255)  # 0-1 input: the mean/std are folded in the graph
    assert v8.shape == (2, 4 + nc, rows.shape[1])
    v8 = v8.transpose(0, 2, 1)
    np.testing.assert_allclose(_xyxy(v8[..., :4]), rows[..., :4], atol=1e-3)
    np.testing.assert_allclose(v8[..., 4:], rows[..., 4:], atol=1e-5)

    v5 = _run(files["yolov5"], pixels / 255)
    assert v5.shape == (2, rows.shape[1], 5 + nc)
    np.testing.assert_allclose(_xyxy(v5[..., :4]), rows[..., :4], atol=1e-3)
    np.testing.assert_allclose(v5[..., 4:5] * v5[..., 5:], rows[..., 4:], atol=1e-5)

    from yoloswap.deploy.runtimes import load_runtime  # val, predict and benchmark read every layout as rows

    images01 = pixels / 255
    for layout in ("ultralytics", "yolov5"):
        runtime = load_runtime(files[layout])
        torch.testing.assert_close(runtime.infer(images01), torch.from_numpy(rows), atol=1e-3, rtol=0)
        assert runtime.names == NAMES

    props = {p.key: p.value for p in onnx.load(str(files["ultralytics"])).metadata_props}  # what YOLO() reads
    assert int(props["stride"]) == 32 and int(props["batch"]) == 2 and int(props["channels"]) == 3
    assert props["task"] == "detect" and ast.literal_eval(props["end2end"]) is False
    assert ast.literal_eval(props["imgsz"]) == [64, 64]
    assert ast.literal_eval(props["names"]) == {0: "red", 1: "green", 2: "blue"}
    assert ast.literal_eval(props["args"])["nms"] is False


def test_a_layout_with_nms_or_an_unknown_name_is_a_usage_error(tmp_path):
    model, _ = detector("yolov5n")
    for spec in (ExportSpec(img_size=64, layout="ultralytics", nms=True), ExportSpec(img_size=64, layout="yolov8")):
        with pytest.raises(UsageError, match="--nms is for --layout yoloswap|--layout 'yolov8'"):
            export_model(model, NAMES, "yolov5n", "onnx", spec, tmp_path / "m.onnx")


@pytest.mark.slow
def test_export_cli_writes_the_layout_and_checks_parity(cli, tmp_path):
    ckpt, _ = write_checkpoint(tmp_path / "best.pt")
    code, out, err = cli("export", "--weights", str(ckpt), "--layout", "ultralytics", "--out", str(tmp_path / "u.onnx"))
    assert code == 0, err
    assert "ONNX Runtime vs PyTorch" in out and "ok" in out
    assert _run(tmp_path / "u.onnx", torch.rand(1, 3, 64, 64)).shape[1] == 4 + len(NAMES)
