"""Learning benchmark: mAP@.5:.95 against wall-clock time, yoloswap's yolov5n against Ultralytics' yolov5n.yaml.

Two modes:

- CPU (default): the built-in set, 256 px, batch 16, a 5-minute budget, yolov5n; both tools get the same number
  of torch threads (``--threads``, default Ultralytics' own choice, cpu_count - 1).
- GPU (``--device cuda``): 2048 generated images (plus 256 for validation) at 640 px, batch 64, 4 epochs with
  mosaic on throughout for both, yolov5s, mixed precision; no time budget.

``--head yolov5|yolov8`` picks yoloswap's head (default: the preset's, yolov5); Ultralytics always builds its
anchor-free head.

Issue 4's target: on this 2-core CPU, with the same built-in images, image size, batch size and a 5-minute budget,
yoloswap's yolov5n ends with a higher mAP than Ultralytics'. Both train from scratch, one after the other (never
at the same time: they would share two cores), each with its own defaults for everything not named here:

- yoloswap: `yoloswap train -b yolov5n --time BUDGET ...`; its `metrics.csv` gives mAP per epoch and epoch times.
- Ultralytics: `yolov5n.yaml` (which Ultralytics builds as its anchor-free "YOLOv5u" head, not the original
  anchor-based one) with `time=BUDGET/60` hours, run by `bench/ultralytics_side.py` in its own venv
  (`--ultra-python`, default /root/.venvs/ultra/bin/python); its `results.csv` gives mAP per epoch and time.

Which figures are comparable: each tool's own per-epoch mAP comes from its own evaluator (yoloswap: faster-coco-eval,
the COCO protocol; Ultralytics: its own AP code, close to but not the COCO protocol). So the final checkpoints of
both (best.pt and last.pt) are also re-scored here by one harness: predictions at score 0.001, NMS IoU 0.65, at most
300 per image, on the same val images, ground truth read from the same label files, scored by yoloswap's COCO
evaluator (`yoloswap.evaluation.coco.CocoAccumulator`). Those re-scored rows are the like-for-like comparison.

Ultralytics gets a copy of the built-in set (it writes label caches beside the labels, and resolves a relative
`path:` against its own data-sets folder), so yoloswap's cache is never touched.

Run with the venv that has yoloswap installed:  python bench/learning.py [--budget-min 5]
Prints Markdown tables to stdout; logs of both runs go to files under --out. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

BENCH_DIR = Path(__file__).resolve().parent
EVAL_CONF = 0.001  # yoloswap's (and YOLOv5's) evaluation settings, applied to both tools
EVAL_IOU = 0.65


@dataclass
class Curve:
    """mAP after each epoch against cumulative training time (setup excluded, validation included)."""

    tool: str
    epochs: list[int]
    seconds: list[float]
    map: list[float]
    map50: list[float]
    wall_s: float  # the whole subprocess: setup, training, final evaluation
    run_dir: Path
    command: list[str]
    notes: str = ""

    def at(self, t: float) -> tuple[float, float] | None:
        """(mAP@.5:.95, mAP@.5) of the last evaluation finished by time ``t``, if any."""
        done = [i for i, s in enumerate(self.seconds) if s <= t]
        return (self.map[done[-1]], self.map50[done[-1]]) if done else None


# ---------------------------------------------------------------------------------------------------- running


def run_logged(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Run ``cmd`` with stdout and stderr to ``log``; return its wall seconds; stop the benchmark if it fails."""
    print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"`{' '.join(cmd)}` exited {code}; last lines of {log}:\n{tail}")
    return seconds


def yoloswap_command() -> list[str]:
    script = Path(sys.executable).with_name("yoloswap")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "yoloswap"]


def run_yoloswap(args: argparse.Namespace, out: Path, data_yaml: Path | None) -> Curve:
    run_dir = out / "yoloswap"
    budget = ["--time", f"{args.budget_min:g}"] if args.budget_min else []
    cmd = yoloswap_command() + [
        "train", "-b", args.model, *budget, "--epochs", str(args.epochs),
        "--img-size", str(args.img_size), "--batch-size", str(args.batch_size), "--workers", str(args.workers),
        "--device", args.device, "--seed", str(args.seed), "--out", str(run_dir), "--exist-ok",
        *(["--data", str(data_yaml)] if data_yaml is not None else []),
        *(["--head", args.head] if args.head else []),
        *(["--close-mosaic", "0"] if args.device == "cuda" else []),  # mosaic on throughout
        *shlex.split(args.yoloswap_args),
    ]  # fmt: skip
    env = dict(os.environ)
    if args.device == "cpu":  # torch reads it at start-up; workers set their own (1)
        env["OMP_NUM_THREADS"] = str(args.threads)
    wall = run_logged(cmd, out / "yoloswap.log", env)
    rows = read_csv(run_dir / "metrics.csv")
    seconds, done = [], 0.0
    for row in rows:
        done += float(row["time/epoch_s"])
        seconds.append(done)
    evaluated = [(r, s) for r, s in zip(rows, seconds) if r.get("metrics/mAP50-95") not in (None, "")]
    threads = args.threads if args.device == "cpu" else "-"
    return Curve(
        f"yoloswap {args.model} ({args.head or 'preset head'})",
        epochs=[int(r["epoch"]) for r, _ in evaluated],
        seconds=[s for _, s in evaluated],
        map=[float(r["metrics/mAP50-95"]) for r, _ in evaluated],
        map50=[float(r["metrics/mAP50"]) for r, _ in evaluated],
        wall_s=wall, run_dir=run_dir, command=cmd, notes=f"workers {args.workers}, torch threads {threads}",
    )


def run_ultralytics(args: argparse.Namespace, out: Path, data_yaml: Path) -> Curve:
    cmd = [args.ultra_python, str(BENCH_DIR / "ultralytics_side.py"), "--config-dir", str(out / "ultralytics-config"),
           "train", "--data", str(data_yaml), "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
           "--workers", str(args.workers), "--budget-min", f"{args.budget_min:g}", "--epochs", str(args.epochs),
           "--threads", str(args.threads if args.device == "cpu" else 0), "--seed", str(args.seed), "--project",
           str(out), "--name", "ultralytics", "--model", f"{args.model}.yaml", "--device", args.device,
           *(["--close-mosaic", "0"] if args.device == "cuda" else [])]  # fmt: skip
    wall = run_logged(cmd, out / "ultralytics.log")
    run_dir = out / "ultralytics"
    side = json.loads((run_dir / "side.json").read_text())
    rows = read_csv(run_dir / "results.csv")
    return Curve(
        f"Ultralytics {args.model}.yaml",
        epochs=[int(float(r["epoch"])) for r in rows],
        seconds=[float(r["time"]) for r in rows],
        map=[float(r["metrics/mAP50-95(B)"]) for r in rows],
        map50=[float(r["metrics/mAP50(B)"]) for r in rows],
        wall_s=wall, run_dir=run_dir, command=cmd,
        notes=f"{side['params']:,} params, optimizer {side['optimizer']}, workers {side['workers']} (asked "
              f"{args.workers}), torch threads {side['torch_threads']}, close_mosaic {side['close_mosaic']}",
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def copy_dataset(data_yaml: Path, dest: Path) -> Path:
    """A copy of the Ultralytics-layout set whose YAML has an absolute ``path``; returns the new YAML."""
    src_root = data_yaml.parent
    spec = yaml.safe_load(data_yaml.read_text())
    src_root = (src_root / spec.get("path", ".")).resolve()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src_root, dest, ignore=shutil.ignore_patterns("*.cache"))
    spec["path"] = str(dest)
    new_yaml = dest / "data.yaml"
    new_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    return new_yaml


# ---------------------------------------------------------------------------------------------------- re-scoring


def val_ground_truth(data_yaml: Path):
    """(image files, EvalImages, names) of the val split, read from the label files the way both tools read them."""
    from PIL import Image

    from yoloswap.evaluation.coco import EvalImage

    spec = yaml.safe_load(data_yaml.read_text())
    root = (data_yaml.parent / spec.get("path", ".")).resolve()
    names = spec["names"] if isinstance(spec["names"], list) else [spec["names"][k] for k in sorted(spec["names"])]
    image_dir = root / spec["val"]
    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp"})
    images = []
    for image_id, path in enumerate(files):
        with Image.open(path) as im:
            w, h = im.size
        label = root / "labels" / path.parent.relative_to(root / "images") / f"{path.stem}.txt"
        rows = np.loadtxt(label, ndmin=2) if label.exists() and label.stat().st_size else np.zeros((0, 5))
        cls, cx, cy, bw, bh = rows.T if len(rows) else (np.zeros(0),) * 5
        boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], axis=1)
        images.append(EvalImage(image_id=image_id, width=w, height=h, boxes=boxes, classes=cls.astype(int)))
    return files, images, names


def coco_score(files, images, names, dets_by_name: dict[str, np.ndarray]) -> dict:
    from yoloswap.evaluation.coco import CocoAccumulator

    acc = CocoAccumulator(names)
    for path, image in zip(files, images):
        acc.add(image, np.asarray(dets_by_name.get(path.name, np.zeros((0, 6))), dtype=np.float64).reshape(-1, 6))
    return acc.compute()


def yoloswap_predictions(weights: Path, files: list[Path], img_size: int, device: str = "cpu"
                         ) -> dict[str, np.ndarray]:
    import torch

    from yoloswap.assembly import load_detector
    from yoloswap.deploy.predict import predict_images

    model = load_detector(weights)[0]
    return {path.name: dets.numpy() for path, _, dets in
            predict_images(model, files, img_size, torch.device(device), conf=EVAL_CONF, iou=EVAL_IOU)}


def ultralytics_predictions(args: argparse.Namespace, out: Path, weights: Path, source: Path) -> dict[str, np.ndarray]:
    dump = out / f"ultralytics-{weights.stem}-predictions.json"
    cmd = [args.ultra_python, str(BENCH_DIR / "ultralytics_side.py"), "--config-dir", str(out / "ultralytics-config"),
           "predict", "--weights", str(weights), "--source", str(source), "--img-size", str(args.img_size),
           "--conf", str(EVAL_CONF), "--iou", str(EVAL_IOU), "--out", str(dump), "--device", args.device]  # fmt: skip
    run_logged(cmd, out / f"ultralytics-predict-{weights.stem}.log")
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 6) for k, v in json.loads(dump.read_text()).items()}


# ---------------------------------------------------------------------------------------------------- printing


def fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_curves(curves: list[Curve], budget_s: float) -> None:
    print("\nPer-epoch mAP (each tool's own evaluator) against cumulative training time (setup excluded):\n")
    head = " | ".join(f"{c.tool} t s | mAP50-95 | mAP50" for c in curves)
    print(f"| epoch | {head} |\n|---:|" + "---:|---:|---:|" * len(curves))
    for epoch in sorted({e for c in curves for e in c.epochs}):
        cells = []
        for c in curves:
            if epoch in c.epochs:
                i = c.epochs.index(epoch)
                cells.append(f"{c.seconds[i]:.0f} | {fmt(c.map[i])} | {fmt(c.map50[i])}")
            else:
                cells.append(" | | ")  # three empty cells
        print(f"| {epoch} | {' | '.join(cells)} |")
    marks = sorted({*np.arange(60.0, budget_s + 1e-6, 60.0).tolist(), budget_s,
                    max(s for c in curves for s in c.seconds or [0.0])})
    print("\nmAP@.5:.95 reached by each time (last evaluation finished by then):\n")
    print("| time s | " + " | ".join(c.tool for c in curves) + " |\n|---:|" + "---:|" * len(curves))
    for t in marks:
        print(f"| {t:.0f} | " + " | ".join(fmt((c.at(t) or (None,))[0]) for c in curves) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu: the built-in set on a time budget; cuda: the GPU mode (2048 generated images)")
    parser.add_argument("--head", choices=["yolov5", "yolov8"], default=None,
                        help="yoloswap's head (default: the preset's, yolov5)")
    parser.add_argument("--model", default=None, help="yolov5n/s/m for both tools (default: yolov5n on CPU, "
                                                      "yolov5s on CUDA)")
    parser.add_argument("--budget-min", type=float, default=None,
                        help="training wall-clock budget, minutes (default 5 on CPU; none on CUDA)")
    parser.add_argument("--img-size", type=int, default=None, help="default 256 on CPU, 640 on CUDA")
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 on CPU, 64 on CUDA")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers for both (default 2 on CPU, "
                                                                  "where Ultralytics forces 0; 8 on CUDA)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (default 300 on CPU, where the time budget decides; 4 on CUDA)")
    parser.add_argument("--gpu-images", type=int, default=2048, help="generated training images in the GPU mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ultra-python", default=os.environ.get("ULTRA_PYTHON", "/root/.venvs/ultra/bin/python"))
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for both tools on CPU; 0 = Ultralytics' default (cpu_count - 1, min 1)")
    parser.add_argument(
        "--yoloswap-args", default="",
        help="extra `yoloswap train` options (default none: yoloswap's own defaults, optimizer=auto, as Ultralytics "
        "keeps its own)",
    )
    parser.add_argument("--only", choices=["both", "yoloswap", "ultralytics"], default="both")
    parser.add_argument("--no-rescore", action="store_true", help="skip re-scoring the checkpoints")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a new one under /tmp)")
    args = parser.parse_args()
    gpu = args.device == "cuda"
    for name, cpu_value, gpu_value in (("model", "yolov5n", "yolov5s"), ("budget_min", 5.0, 0.0),
                                       ("img_size", 256, 640), ("batch_size", 16, 64), ("workers", 2, 8),
                                       ("epochs", 300, 4)):
        if getattr(args, name) is None:
            setattr(args, name, gpu_value if gpu else cpu_value)
    args.threads = args.threads or max((os.cpu_count() or 2) - 1, 1)

    from yoloswap.data.synthetic import builtin_data_yaml, write_demo_data

    out = (args.out or Path(f"/tmp/yoloswap-learning-bench-{time.strftime('%Y%m%d-%H%M%S')}")).absolute()
    out.mkdir(parents=True, exist_ok=True)
    if gpu:  # the generated set, at the training size (yoloswap reads it in place; Ultralytics gets a copy)
        builtin = write_demo_data(out / "generated", num_train=args.gpu_images, num_val=256, img_size=args.img_size,
                                  seed=args.seed)
    else:
        builtin = builtin_data_yaml()
    ultra_yaml = copy_dataset(builtin, out / "data")

    print("## Learning benchmark (bench/learning.py)\n")
    print(f"- python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}; started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"- built-in set {builtin.parent} (copy for Ultralytics: {ultra_yaml.parent}); img {args.img_size}, "
          f"batch {args.batch_size}, budget {args.budget_min:g} min (0: none, {args.epochs} epochs), seed {args.seed}; "
          f"device {args.device}, yoloswap head {args.head or 'preset'}; work folder {out}\n",
          flush=True)

    curves = []
    if args.only in ("both", "yoloswap"):
        curves.append(run_yoloswap(args, out, builtin if gpu else None))
    if args.only in ("both", "ultralytics"):
        curves.append(run_ultralytics(args, out, ultra_yaml))

    print("| tool | epochs | training s | process wall s | final mAP50-95 (own) | final mAP50 (own) | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for c in curves:
        last_t = c.seconds[-1] if c.seconds else None
        print(f"| {c.tool} | {len(c.epochs)} | {fmt(last_t, 0)} | {c.wall_s:.0f} | {fmt(c.map[-1] if c.map else None)} "
              f"| {fmt(c.map50[-1] if c.map50 else None)} | {c.notes} |")
    budget_s = args.budget_min * 60 or max(s for c in curves for s in c.seconds or [1.0])  # no budget: the runs' length
    print_curves(curves, budget_s)

    if not args.no_rescore:
        files, images, names = val_ground_truth(ultra_yaml)
        print(f"\nRe-scored by one harness (yoloswap's COCO evaluator, {len(files)} val images, score >= {EVAL_CONF}, "
              f"NMS IoU {EVAL_IOU}, <= 300 per image). These are the comparable figures:\n")
        print("| tool | checkpoint | mAP50-95 | mAP50 |\n|---|---|---:|---:|")
        for c in curves:
            for ckpt in ("best", "last"):
                weights = c.run_dir / "weights" / f"{ckpt}.pt"
                if not weights.exists():
                    print(f"| {c.tool} | {ckpt}.pt | missing | |")
                    continue
                if c.tool.startswith("yoloswap"):
                    dets = yoloswap_predictions(weights, files, args.img_size, args.device)
                else:
                    dets = ultralytics_predictions(args, out, weights, files[0].parent)
                scores = coco_score(files, images, names, dets)
                print(f"| {c.tool} | {ckpt}.pt | {fmt(scores['map'])} | {fmt(scores['map50'])} |", flush=True)
    print("\nTraining commands run:\n\n```")
    for c in curves:
        print(" ".join(c.command))
    print("```")
    print(f"\nfinished {time.strftime('%Y-%m-%d %H:%M:%S')}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
