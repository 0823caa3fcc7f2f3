"""export --int8: an ONNX Runtime QDQ file beside the fp32 one, calibrated on the data, that keeps the detections.

A detector with random weights is no subject for quantisation: its scores sit near 0, and a random network with
normalised activations amplifies rounding (measured: 40-90% relative error on the head's inputs). So the module
first fits yolov5n for 60 steps on the six drawn training images (~5 s on one core), which detects them with
scores near 0.9 - enough for "the int8 file finds what the fp32 file finds" to mean something.
"""

from __future__ import annotations

import json

import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from tests.make_data import ultralytics_set  # noqa: E402
from tests.test_export import NAMES, detector  # noqa: E402
from yoloswap import ops  # noqa: E402
from yoloswap.deploy.export import ExportSpec, export_model, read_metadata  # noqa: E402
from yoloswap.deploy.quantize import (  # noqa: E402
    CalibrationImages,
    calibration_samples,
    float_tail,
    int8_path,
    quantize_export,
    quantize_onnx,
    quantized_ops,
)
from yoloswap.deploy.runtimes import load_runtime  # noqa: E402

SIZE = 64
FIT_STEPS = 60
# int8 against fp32 on the calibration images, for the fitted model below (measured: top-10 rows' scores within
# 0.02, their boxes within 0.5 px; quantising the head too moves scores by 0.98)
SCORE_TOL = 0.06
BOX_TOL_PX = 2.0
MATCH_IOU = 0.8
# Confident detections are compared one to one. Below it they may differ: the fitted model's one false positive
# (fp32 score 0.37, a duplicate beside a true box) comes out of the int8 file elsewhere at 0.20.
MATCH_CONF = 0.5


def fit_detector(images: torch.Tensor, targets: torch.Tensor):
    """yolov5n fitted to ``images`` (B, 3, S, S) in [0, 1]: Adam for FIT_STEPS steps, then BatchNorm statistics
    recomputed on the batch (60 steps leave the running averages behind the weights)."""
    torch.manual_seed(0)
    model, plan = detector("yolov5n", SIZE)
    model.train()
    criterion = model.head.make_loss(SIZE)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(FIT_STEPS):
        loss, _ = criterion(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        model(images)
    return model.eval(), plan


def train_batch(data):
    """The training split, letterboxed as val feeds it: images (B, 3, S, S) in [0, 1], targets (M, 6)."""
    samples, _ = calibration_samples(data, 100)
    reader = CalibrationImages(samples, SIZE)
    items = [reader.dataset[i] for i in range(len(reader))]
    images = torch.stack([image for image, _, _ in items]).float() / 255
    targets = torch.cat([torch.cat((torch.full((len(labels), 1), float(i)), labels), 1)
                         for i, (_, labels, _) in enumerate(items)])
    return images, targets


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """best.pt (fitted), best.onnx (fp32) and best.int8.onnx, and the data set."""
    from yoloswap.assembly import CHECKPOINT_FORMAT
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.checkpoint import save_checkpoint
    from yoloswap.config.options import TrainOptions

    root = tmp_path_factory.mktemp("int8")
    data = ultralytics_set(root / "data", names_as_dict=False, size=SIZE)
    images, targets = train_batch(data)
    model, plan = fit_detector(images, targets)
    options = TrainOptions(backbone="yolov5n", img_size=SIZE, weights="none", data=str(data))
    save_checkpoint({
        "format": CHECKPOINT_FORMAT, "epoch": 0, "plan": plan.to_dict(), "names": NAMES, "category_ids": None,
        "config": {"preset": resolve_backbone("yolov5n").to_dict(), "options": options.to_dict()},
        "model": model.state_dict(), "ema": None,
    }, root / "best.pt")
    fp32 = export_model(model, NAMES, "yolov5n", "onnx", ExportSpec(img_size=SIZE), root / "best.onnx",
                        trained_on=str(data))
    int8, _ = quantize_export(fp32, data, count=64)
    return {"root": root, "data": data, "fp32": fp32, "int8": int8, "images": images, "model": model}


def test_the_int8_file_sits_beside_the_fp32_one_with_its_metadata(files):
    assert files["int8"] == files["root"] / "best.int8.onnx" and files["int8"].is_file()
    assert int8_path(files["root"] / "m.onnx").name == "m.int8.onnx"
    fp32, int8 = read_metadata(files["fp32"]), read_metadata(files["int8"])
    assert int8.pop("int8") is True and "int8" not in fp32
    calibration = int8.pop("calibration")
    assert int8 == fp32  # names, strides, size, head, data YAML ... unchanged
    assert (calibration["split"], calibration["images"], calibration["format"]) == ("train", 6, "QDQ")
    assert calibration["data"] == str(files["data"].resolve())


def test_the_graph_is_quantised_but_its_decode_stays_float(files):
    counts = quantized_ops(files["int8"])
    assert counts.get("QuantizeLinear", 0) > 50 and counts.get("DequantizeLinear", 0) > 50
    assert quantized_ops(files["fp32"]) == {}
    proto = onnx.load(str(files["int8"]))
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 50  # the conv weights are stored as int8 (the file is smaller, too)
    assert files["int8"].stat().st_size < files["fp32"].stat().st_size / 2
    producers = {out: node for node in proto.graph.node for out in node.output}
    last = producers[proto.graph.output[0].name]
    assert last.op_type == "Concat"  # boxes and scores joined in float
    assert all(producers[i].op_type != "DequantizeLinear" for i in last.input if i in producers)
    tail = set(float_tail(onnx.load(str(files["fp32"]))))
    tail_ops = {n.op_type for n in proto.graph.node if n.name in tail}
    assert "Conv" in tail_ops and "Concat" in tail_ops and "QuantizeLinear" not in tail_ops


def compare_on_images(fp32_rows: torch.Tensor, int8_rows: torch.Tensor) -> dict:
    """Largest score and box differences over each image's 10 best fp32 rows, and how many confident NMS'd fp32
    detections (score >= MATCH_CONF) the int8 file matched (same class, IoU > MATCH_IOU, score within SCORE_TOL;
    int8 detections down to MATCH_CONF - SCORE_TOL count, so a score just over the threshold may land under it)."""
    best = fp32_rows[..., 4:].max(-1).values
    top = best.topk(10, dim=1).indices  # (B, 10)
    pick = lambda rows: rows.gather(1, top[..., None].expand(-1, -1, rows.shape[-1]))  # noqa: E731
    a, b = pick(fp32_rows), pick(int8_rows)
    found, matched = 0, 0
    for da, db in zip(ops.postprocess(fp32_rows, MATCH_CONF, 0.45), ops.postprocess(int8_rows, MATCH_CONF - SCORE_TOL, 0.45)):
        found += len(da)
        for det in da:
            iou = ops.box_iou(det[None, :4], db[:, :4])[0] if len(db) else torch.zeros(0)
            same = (db[:, 5] == det[5]) & (iou > MATCH_IOU) & ((db[:, 4] - det[4]).abs() < SCORE_TOL)
            matched += int(same.any())
    return {"scores": float((a[..., 4:] - b[..., 4:]).abs().max()), "boxes": float((a[..., :4] - b[..., :4]).abs().max()),
            "found": found, "matched": matched}


def test_the_runtime_table_runs_it_and_it_finds_what_fp32_finds(files):
    fp32, int8 = load_runtime(files["fp32"]), load_runtime(files["int8"])
    assert (int8.kind, int8.names, int8.img_size) == ("onnxruntime", NAMES, SIZE)
    images = files["images"]  # the calibration images
    fp32_rows, int8_rows = fp32.infer(images), int8.infer(images)
    report = compare_on_images(fp32_rows, int8_rows)
    assert report["found"] >= 9  # the fitted model detects its 9 boxes (one or two per image)
    assert report["matched"] == report["found"], report
    assert report["scores"] < SCORE_TOL and report["boxes"] < BOX_TOL_PX, report
    assert not torch.equal(fp32_rows, int8_rows)  # it is a different computation, not a copy


def test_quantising_the_head_too_ruins_the_scores(files, tmp_path):
    """The tolerances above can fail: with the decode quantised (one int8 scale for pixel boxes and [0, 1]
    scores) the same comparison breaks."""
    samples, _ = calibration_samples(files["data"], 64)
    ruined = tmp_path / "all.onnx"
    quantize_onnx(files["fp32"], ruined, CalibrationImages(samples, SIZE), keep_float=[])
    from yoloswap.deploy.export import set_onnx_metadata

    proto = onnx.load(str(ruined))
    set_onnx_metadata(proto, read_metadata(files["int8"]))
    onnx.save(proto, str(ruined))
    report = compare_on_images(load_runtime(files["fp32"]).infer(files["images"]), load_runtime(ruined).infer(files["images"]))
    assert report["scores"] > 0.5 and report["matched"] < report["found"], report


def test_val_predict_and_benchmark_take_the_int8_file(cli, files, tmp_path):
    code, out, err = cli("val", "-w", str(files["int8"]), "--json", "--workers", "0", "--device", "cpu")
    assert code == 0, err
    scored = json.loads(out)
    assert scored["runtime"] == "onnxruntime" and scored["images"] == 3 and 0 <= scored["map"] <= 1
    code, out, err = cli("predict", "-w", str(files["int8"]), "-s", str(files["root"] / "data" / "images" / "train"),
                         "--out", str(tmp_path / "pred"), "--workers", "0", "--device", "cpu")
    assert code == 0, err
    predictions = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert sum(len(p["detections"]) for p in predictions) >= 6
    code, out, err = cli("benchmark", "-w", str(files["int8"]), "--iters", "2", "--warmup", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["timings"][0]["runtime"] == "onnxruntime"


def test_export_int8_writes_both_files_and_prints_fp32_against_int8(cli, files, tmp_path):
    weights = tmp_path / "best.pt"
    weights.write_bytes((files["root"] / "best.pt").read_bytes())
    code, out, err = cli("export", "-w", str(weights), "--int8", "--data", str(files["data"]), "--calib-images", "4")
    assert code == 0, err
    assert (tmp_path / "best.onnx").is_file() and (tmp_path / "best.int8.onnx").is_file()
    assert "quantised to int8 (QDQ, 4 train images" in out
    assert "fp32 vs int8 on 3 val images" in out and "× the fp32 speed" in out and "best.int8.onnx" in out
    assert read_metadata(tmp_path / "best.int8.onnx")["calibration"]["images"] == 4


@pytest.mark.parametrize("extra,message", [
    (["--int8"], "--int8 needs --data DATA.yaml"),
    (["--int8", "--data", "d.yaml", "--format", "torchscript"], "--int8 is supported with --format onnx only"),
    (["--int8", "--data", "d.yaml", "--format", "openvino"], "--int8 is supported with --format onnx only"),
    (["--int8", "--data", "d.yaml", "--nms"], "--int8 and --nms together"),
    (["--int8", "--data", "d.yaml", "--opset", "12"], "--int8 needs --opset 13"),
    (["--int8", "--data", "d.yaml", "--calib-images", "0"], "--calib-images must be at least 1"),
    (["--data", "d.yaml"], "--data and --calib-images calibrate --int8"),
])
def test_int8_usage_errors_are_one_line_exit_2(cli, tmp_path, extra, message):
    code, out, err = cli("export", "-w", str(tmp_path / "best.pt"), *extra)
    assert code == 2, err
    assert err.startswith("Error: ") and message in err and len(err.strip().splitlines()) == 1 and out == ""


def test_a_missing_calibration_yaml_stops_before_anything_is_exported(cli, tmp_path):
    code, out, err = cli("export", "-w", str(tmp_path / "best.pt"), "--int8", "--data", str(tmp_path / "no.yaml"))
    assert code == 1 and err.startswith("Error: --data ") and "not found" in err and len(err.strip().splitlines()) == 1
