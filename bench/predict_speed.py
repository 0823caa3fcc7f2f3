"""Predict throughput: yoloswap `-b yolov5n --head yolov8` against Ultralytics `yolov5nu` (the same architecture),
on the same images and the same video, same size, same torch threads, CPU. Prints a Markdown table.

Both models are untrained (yoloswap: random weights in a checkpoint; Ultralytics: built from `yolov5nu.yaml`, no
download), so the figures are about the pipeline: decode, letterbox, forward, NMS, boxes back. Nothing is drawn or
saved on either side. Ultralytics is optional: without it only the yoloswap rows are printed.

    PYTHONPATH=$PWD python bench/predict_speed.py [--images 500] [--frames 150] [--img-size 640] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_inputs(folder: Path, images: int, frames: int, w: int = 640, h: int = 480) -> tuple[Path, Path]:
    """JPEGs and an mp4 of smooth random shapes (compressible like photos, unlike noise)."""
    import cv2

    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)

    def picture():
        img = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8)
        for _ in range(8):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.circle(img, (x, y), int(rng.integers(10, 120)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        return img

    for i in range(images):
        cv2.imwrite(str(folder / "images" / f"{i:04d}.jpg"), picture())
    video = folder / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for _ in range(frames):
        writer.write(picture())
    writer.release()
    return folder / "images", video


def yoloswap_checkpoint(path: Path, size: int) -> Path:
    import torch

    from yoloswap.assembly import CHECKPOINT_FORMAT, build_detector
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.checkpoint import save_checkpoint
    from yoloswap.config.options import TrainOptions

    torch.manual_seed(0)
    preset = dataclasses.replace(resolve_backbone("yolov5n"), head="yolov8")
    model, plan = build_detector(preset, 80, (size, size))
    options = TrainOptions(backbone="yolov5n", head="yolov8", img_size=size, weights="none")
    save_checkpoint({"format": CHECKPOINT_FORMAT, "epoch": 0, "plan": plan.to_dict(),
                     "names": [f"c{i}" for i in range(80)], "category_ids": None,
                     "config": {"preset": preset.to_dict(), "options": options.to_dict()},
                     "model": model.state_dict(), "ema": None}, path)
    return path


def run_yoloswap(weights: Path, source: Path, size: int, batch: int, workers: int) -> dict:
    from yoloswap.deploy.predict import PredictSettings, Speed, predict_source
    from yoloswap.deploy.runtimes import TorchRuntime
    from yoloswap.deploy.sources import open_source

    runtime = TorchRuntime(weights, "cpu")
    settings = PredictSettings(size, batch_size=batch, workers=workers)
    warm = open_source(source)
    if warm.files:
        warm.files = warm.files[:batch]
    for _ in predict_source(runtime, warm, dataclasses.replace(settings, workers=0)):
        break
    speed, start, n = Speed(), time.perf_counter(), 0
    for _frame, _dets in predict_source(runtime, open_source(source), settings, speed):
        n += 1
    wall = time.perf_counter() - start
    return {"images": n, "wall_s": wall, **speed.per_image()}


def run_ultralytics(source: Path, size: int, batch: int) -> dict | None:
    try:
        os.environ["YOLO_OFFLINE"] = "1"
        from ultralytics import YOLO
    except ImportError:
        return None
    model = YOLO("yolov5nu.yaml")
    kwargs = dict(imgsz=size, device="cpu", conf=0.25, iou=0.45, save=False, verbose=False, stream=True, batch=batch)
    for _ in model.predict(source=str(source), **kwargs):  # warm-up
        break
    stages, start, n = np.zeros(3), time.perf_counter(), 0
    for result in model.predict(source=str(source), **kwargs):
        stages += [result.speed["preprocess"], result.speed["inference"], result.speed["postprocess"]]
        n += 1
    wall = time.perf_counter() - start
    per = stages / max(n, 1)
    return {"images": n, "wall_s": wall, "preprocess_ms": per[0], "inference_ms": per[1], "postprocess_ms": per[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--img-size", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        folder, video = make_inputs(Path(tmp), args.images, args.frames)
        weights = yoloswap_checkpoint(Path(tmp) / "best.pt", args.img_size)
        rows = []
        for what, source in (("images", folder), ("video", video)):
            rows.append((f"yoloswap yolov5n+yolov8, batch {args.batch}, {args.workers} workers", what,
                         run_yoloswap(weights, source, args.img_size, args.batch, args.workers)))
            rows.append((f"yoloswap yolov5n+yolov8, batch 1, 0 workers", what,
                         run_yoloswap(weights, source, args.img_size, 1, 0)))
            for batch in (args.batch, 1):  # Ultralytics batches folders and videos too: same batch as yoloswap's
                ultra = run_ultralytics(source, args.img_size, batch)
                if ultra is not None:
                    torch.set_num_threads(args.threads)  # Ultralytics may change it on import
                    rows.append((f"Ultralytics yolov5nu, batch {batch}", what, ultra))
    print(f"load average at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print(f"\n{args.images} images / {args.frames} video frames, 640×480 source, {args.img_size} px, "
          f"{args.threads} torch threads, CPU\n")
    print("| pipeline | source | images/s | pre-process ms | inference ms | post-process ms |")
    print("|---|---|---:|---:|---:|---:|")
    for name, what, r in rows:
        print(f"| {name} | {what} | {r['images'] / r['wall_s']:.1f} | {r['preprocess_ms']:.1f} | "
              f"{r['inference_ms']:.1f} | {r['postprocess_ms']:.1f} |")


if __name__ == "__main__":
    main()
