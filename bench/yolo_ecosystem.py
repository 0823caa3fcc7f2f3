"""yoloswap against the real Ultralytics package, both directions (bench/RESULTS.md, "YOLO ecosystem").

Needs a venv with ``ultralytics`` (not a yoloswap dependency; never in the test suite):

    python bench/yolo_ecosystem.py [--out /tmp/yolo-eco]

1. In: Ultralytics builds ``yolov5nu`` / ``yolov5su`` (random init: no download) with non-trivial BatchNorm
   statistics and saves it with ``model.save`` (the pickled ``DetectionModel``, half precision, as released files
   are). yoloswap reads that file (no Ultralytics code runs: yoloswap.foreign_pickle), and on the same input both
   give the same decoded (B, 4 + nc, N) output; the largest difference is printed.
2. Out: a yoloswap detector (ConvNeXt-T and MobileNetV3-S backbones, yolov8 head) is exported with
   ``--layout ultralytics``; Ultralytics' ``YOLO("x.onnx").predict`` on a folder of 640x480 images and
   ``yoloswap predict`` on the same ONNX file give boxes that are matched one to one (same class, IoU printed).
   Random weights get a class bias that puts ~40 candidates of a noise image above 0.25, so there is something
   to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("YOLO_OFFLINE", "1")


def _randomize_bn(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)


def checkpoint_parity(name: str, out: Path, size: int = 320) -> dict:
    from ultralytics import YOLO

    from yoloswap.assembly import detector_from_checkpoint
    from yoloswap.deploy.layouts import LAYOUTS
    from yoloswap.foreign_detector import read_detector_file

    torch.manual_seed(0)
    theirs = YOLO(f"{name}.yaml")
    _randomize_bn(theirs.model, 0)
    path = out / f"{name}_random.pt"
    theirs.save(str(path))
    reloaded = YOLO(str(path)).model.float().eval()  # the half-precision values the file holds

    ckpt = read_detector_file(path)
    mine, preset, plan, names, _ = detector_from_checkpoint(ckpt, path)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = reloaded(x)
        want = want[0] if isinstance(want, (list, tuple)) else want  # (B, 4 + nc, N) decoded
        got = LAYOUTS["ultralytics"].to_file(mine.infer(x))
    diff = (want - got).abs()
    own = mine.state_dict()
    return {"file": name, "preset": preset.name, "head": plan.head, "classes": len(names),
            "tensors_loaded": f"{ckpt['origin']['tensors']}/{len([k for k in own if not k.endswith('num_batches_tracked')])}",
            "max_abs_boxes_px": float(diff[:, :4].max()), "max_abs_scores": float(diff[:, 4:].max()),
            "input": f"2x3x{size}x{size}"}


def export_agreement(backbone: str, out: Path, size: int = 640, keep: int = 40) -> dict:
    from PIL import Image
    from ultralytics import YOLO

    from yoloswap.assembly import CHECKPOINT_FORMAT, build_detector
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.checkpoint import save_checkpoint
    from yoloswap.config.options import TrainOptions
    from yoloswap.ops import box_iou

    preset = resolve_backbone(backbone)
    import dataclasses

    preset = dataclasses.replace(preset, head="yolov8", weights="none")
    torch.manual_seed(0)
    model, plan = build_detector(preset, 3, (size, size))
    with torch.no_grad():  # a few confident boxes out of random weights: shift the class bias so that about
        for branch in model.head.cls_branches:  # `keep` candidates of a noise image score above 0.25
            branch[-1].bias.zero_()
        scores = model.eval().infer(torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3)))
        kth = scores[0, :, 4:].max(dim=1).values.sort(descending=True).values[keep - 1].clamp(1e-6, 1 - 1e-6)
        for branch in model.head.cls_branches:
            branch[-1].bias.fill_(float(torch.logit(torch.tensor(0.25)) - torch.logit(kth)))
    names = ["a", "b", "c"]
    run = out / backbone
    run.mkdir(parents=True, exist_ok=True)
    options = TrainOptions(backbone=backbone, img_size=size, weights="none")
    save_checkpoint({"format": CHECKPOINT_FORMAT, "epoch": 0, "plan": plan.to_dict(), "names": names,
                     "category_ids": None, "config": {"preset": preset.to_dict(), "options": options.to_dict()},
                     "model": model.state_dict(), "ema": None}, run / "best.pt")
    yoloswap = [sys.executable, "-m", "yoloswap"]
    subprocess.run([*yoloswap, "export", "--weights", str(run / "best.pt"), "--layout", "ultralytics"], check=True)
    images = run / "images"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(images / f"{i}.jpg", quality=95)
    subprocess.run([*yoloswap, "predict", "--weights", str(run / "best.onnx"), "--source", str(images),
                    "--out", str(run / "pred"), "--conf", "0.25", "--iou", "0.45", "--no-save"], check=True,
                   stdout=subprocess.DEVNULL)
    mine = {Path(r["image"]).name: r["detections"] for r in json.loads((run / "pred" / "predictions.json").read_text())}
    theirs = YOLO(str(run / "best.onnx"), task="detect").predict(str(images), conf=0.25, iou=0.45, verbose=False,
                                                                 imgsz=size)
    ious, boxes, mismatched = [], 0, 0
    for result in theirs:
        name = Path(result.path).name
        a = torch.tensor([d["box"] for d in mine[name]]).reshape(-1, 4)
        ca = [d["class_id"] for d in mine[name]]
        b = result.boxes.xyxy.cpu().reshape(-1, 4)
        cb = result.boxes.cls.cpu().int().tolist()
        boxes += len(b)
        if len(a) != len(b):
            mismatched += abs(len(a) - len(b))
        if len(a) and len(b):
            iou = box_iou(b, a)
            best, j = iou.max(dim=1)
            ious += best.tolist()
            mismatched += sum(int(cb[i] != ca[j[i]]) for i in range(len(b)))
    return {"backbone": backbone, "head": "yolov8", "img_size": size, "images": 4, "ultralytics_boxes": boxes,
            "yoloswap_boxes": sum(len(v) for v in mine.values()), "unmatched_or_other_class": mismatched,
            "min_iou": min(ious) if ious else None}


def opencv_reads(out: Path, backbone: str = "mobilenetv3-small") -> dict:
    """OpenCV's DNN module runs both YOLO layouts of an export made by :func:`export_agreement` (same output as
    ONNX Runtime), as OpenCV's YOLO samples do: ``blobFromImage(scalefactor=1/255, swapRB=True)``."""
    import cv2
    import onnxruntime as ort

    run = out / backbone
    yoloswap = [sys.executable, "-m", "yoloswap"]
    subprocess.run([*yoloswap, "export", "--weights", str(run / "best.pt"), "--layout", "yolov5", "--no-check",
                    "--out", str(run / "best_v5.onnx")], check=True, stdout=subprocess.DEVNULL)
    image = cv2.imread(str(run / "images" / "0.jpg"))
    image = cv2.copyMakeBorder(image, 80, 80, 0, 0, cv2.BORDER_CONSTANT, value=(114, 114, 114))  # 640x640
    blob = cv2.dnn.blobFromImage(image, 1 / 255, (640, 640), swapRB=True)
    result = {"backbone": backbone, "opencv": cv2.__version__}
    for layout, name in (("ultralytics", "best.onnx"), ("yolov5", "best_v5.onnx")):
        net = cv2.dnn.readNetFromONNX(str(run / name))
        net.setInput(blob)
        got = net.forward()
        want = ort.InferenceSession(str(run / name)).run(None, {"images": blob})[0]
        result[layout] = {"shape": list(got.shape), "max_abs_vs_onnxruntime": float(np.abs(got - want).max())}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/yolo-eco"))
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--only-opencv", action="store_true", help="after a full run: the OpenCV check alone")
    parser.add_argument("--backbones", default="convnext-tiny,mobilenetv3-small")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import ultralytics

    print(f"ultralytics {ultralytics.__version__}, torch {torch.__version__}")
    if args.only_opencv:
        print(json.dumps(opencv_reads(args.out)))
        return
    for name in ("yolov5nu", "yolov5su"):
        print(json.dumps(checkpoint_parity(name, args.out)))
    if not args.skip_export:
        for backbone in args.backbones.split(","):
            print(json.dumps(export_agreement(backbone, args.out)))
        if "mobilenetv3-small" in args.backbones:
            print(json.dumps(opencv_reads(args.out)))


if __name__ == "__main__":
    main()
