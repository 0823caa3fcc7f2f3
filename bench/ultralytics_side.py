"""The Ultralytics half of the learning benchmark; runs inside the benchmark's own Ultralytics venv, not yoloswap's.

`bench/learning.py` starts it as a subprocess with that venv's python (the two projects pin different things, and
yoloswap must not import Ultralytics). Two jobs:

- ``train``: `yolov5n.yaml` from scratch on a data YAML for a wall-clock budget (Ultralytics' ``time`` argument, in
  hours, re-fits the number of epochs after each epoch), CPU, no plots. Writes ``side.json`` next to the run with
  the run folder and the settings Ultralytics actually used (it forces ``workers=0`` on CPU and sets torch to
  ``cpu_count - 1`` threads unless ``--threads`` overrides it).
- ``predict``: a checkpoint over a folder of images at a low score threshold, boxes dumped to JSON
  ``{file name: [[x1, y1, x2, y2, score, cls], ...]}`` in original-image pixels, so yoloswap's COCO evaluator can
  score them next to yoloswap's own predictions.

Offline by construction: ``YOLO_OFFLINE=1`` stops its online checks and telemetry, and a private
``YOLO_CONFIG_DIR`` (matplotlib's config goes there too) holds a settings file and a stand-in ``Arial.ttf`` (matplotlib's DejaVu Sans, copied) because
Ultralytics' data-set check otherwise tries to download that font even with plots off. Nothing else is fetched:
the model is built from its YAML (``pretrained=False``) and AMP's check, which would download weights, is skipped
on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def prepare_offline(config_dir: Path) -> None:
    """Point Ultralytics at a private config folder with the font it looks for; call before importing it."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))  # keep its font cache out of ~/.config
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)


def train(args: argparse.Namespace) -> None:
    prepare_offline(args.config_dir)
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    if args.threads > 0:  # select_device() resets torch's thread count to this module-level value
        torch_utils.NUM_THREADS = args.threads
    used: dict = {}

    def on_train_start(trainer) -> None:
        used.update(torch_threads=torch.get_num_threads(), workers=trainer.args.workers,
                    optimizer=trainer.args.optimizer, close_mosaic=trainer.args.close_mosaic)

    model = YOLO(args.model)
    model.add_callback("on_train_start", on_train_start)
    start = time.perf_counter()
    cuda = args.device == "cuda"
    extra = {"close_mosaic": args.close_mosaic} if args.close_mosaic is not None else {}
    model.train(data=str(args.data), imgsz=args.img_size, batch=args.batch_size,
                time=args.budget_min / 60 if args.budget_min else None, epochs=args.epochs, workers=args.workers,
                device=0 if cuda else "cpu", val=True, pretrained=False, plots=False, amp=cuda,
                project=str(args.project), name=args.name, exist_ok=True, seed=args.seed, verbose=False, **extra)
    wall = time.perf_counter() - start
    run_dir = Path(model.trainer.save_dir)
    info = {"run_dir": str(run_dir), "wall_s": wall, "model": args.model,
            "params": sum(p.numel() for p in model.model.parameters()), **used}
    (run_dir / "side.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))


def predict(args: argparse.Namespace) -> None:
    prepare_offline(args.config_dir)
    from ultralytics import YOLO

    model = YOLO(str(args.weights))
    out: dict[str, list] = {}
    for result in model.predict(source=str(args.source), imgsz=args.img_size, conf=args.conf, iou=args.iou,
                                max_det=300, device=0 if args.device == "cuda" else "cpu", stream=True,
                                verbose=False):
        boxes = result.boxes
        rows = [[*xyxy, score, cls] for xyxy, score, cls in
                zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())]  # (K, 6), original pixels
        out[Path(result.path).name] = rows
    args.out.write_text(json.dumps(out))
    print(f"{len(out)} images, {sum(len(v) for v in out.values())} boxes -> {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", type=Path, required=True, help="private YOLO_CONFIG_DIR")
    sub = parser.add_subparsers(dest="job", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", default="yolov5n.yaml")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--img-size", type=int, default=256)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--workers", type=int, default=0)
    t.add_argument("--budget-min", type=float, default=5.0, help="0: no time budget, train --epochs")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    t.add_argument("--close-mosaic", type=int, default=None, help="default: Ultralytics' own (10)")
    t.add_argument("--epochs", type=int, default=300, help="ignored by Ultralytics once `time` is set")
    t.add_argument("--threads", type=int, default=0, help="torch threads; 0 = Ultralytics' own choice")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--project", type=Path, required=True)
    t.add_argument("--name", default="train")
    p = sub.add_parser("predict")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--img-size", type=int, default=256)
    p.add_argument("--conf", type=float, default=0.001)
    p.add_argument("--iou", type=float, default=0.65)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    {"train": train, "predict": predict}[args.job](args)


if __name__ == "__main__":
    sys.exit(main())
