"""OpenVINO: the exported IR computes what PyTorch computes (the ONNX tolerances), carries the metadata, and
predict, val and benchmark take it through the runtime table."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("onnx")

from tests.test_export import NAMES, detector, write_checkpoint  # noqa: E402
from yoloswap.deploy.export import PARITY_ATOL_BOXES, PARITY_ATOL_SCORES, ExportSpec, check_parity, export_model  # noqa: E402
from yoloswap.deploy.runtimes import load_runtime  # noqa: E402


@pytest.mark.parametrize("backbone", ["yolov5n", "convnext-tiny"])
def test_openvino_ir_equals_pytorch_within_the_onnx_tolerances(tmp_path, backbone):
    model, _ = detector(backbone)
    spec = ExportSpec(img_size=64, batch=2)
    path = export_model(model, NAMES, backbone, "openvino", spec, tmp_path / "m.xml", trained_on="data.yaml")
    assert path.suffix == ".xml" and path.with_suffix(".bin").is_file()
    report = check_parity(model, path, spec)
    assert report["runtime"] == "OpenVINO"
    assert report["max_abs_boxes"] <= PARITY_ATOL_BOXES and report["max_abs_scores"] <= PARITY_ATOL_SCORES

    runtime = load_runtime(tmp_path)  # the folder holding the IR stands for it
    assert (runtime.kind, runtime.names, runtime.img_size, runtime.trained_on) == ("openvino", NAMES, 64, "data.yaml")
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # 3 images, a batch-2 file
    with torch.no_grad():
        want = model.infer(images)
    torch.testing.assert_close(runtime.infer(images), want, atol=PARITY_ATOL_BOXES, rtol=1e-3)


def test_export_predict_val_and_benchmark_take_the_openvino_file(cli, tmp_path):
    from tests.make_data import ultralytics_set

    weights, _ = write_checkpoint(tmp_path / "best.pt")
    code, out, err = cli("export", "-w", str(weights), "--format", "openvino")
    assert code == 0, err
    assert "OpenVINO vs PyTorch" in out and "ok" in out
    xml = tmp_path / "best.xml"
    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    images = tmp_path / "data" / "images" / "val"
    results = {}
    for name in ("best.pt", "best.xml"):
        code, _, err = cli("predict", "-w", str(tmp_path / name), "-s", str(images), "--out", str(tmp_path / name[5:]),
                           "--conf", "0.001", "--workers", "0", "--device", "cpu")
        assert code == 0, err
        results[name] = json.loads((tmp_path / name[5:] / "predictions.json").read_text())
    for a, b in zip(results["best.pt"], results["best.xml"]):
        assert len(a["detections"]) == len(b["detections"]) > 0
        assert [d["class_id"] for d in a["detections"]] == [d["class_id"] for d in b["detections"]]
    code, out, err = cli("benchmark", "-w", str(xml), "--iters", "2", "--warmup", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["timings"][0]["runtime"] == "openvino"
    code, out, err = cli("val", "-w", str(xml), "--data", str(data), "--json", "--workers", "0", "--device", "cpu")
    assert code == 0, err
    assert json.loads(out)["runtime"] == "openvino"


def test_benchmark_times_openvino_when_asked(cli):
    code, out, err = cli("benchmark", "--backbone", "yolov5n", "--img-size", "64", "--num-classes", "3", "--device",
                         "cpu", "--iters", "2", "--warmup", "1", "--runtimes", "pytorch,openvino", "--json")
    assert code == 0, err
    assert [t["runtime"] for t in json.loads(out)["timings"]] == ["pytorch", "openvino"]
