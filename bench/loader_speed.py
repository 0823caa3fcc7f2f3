"""Training-loader speed in one process: yoloswap's training dataset against Ultralytics' on the same images.

Issue 9 asks for a training loader that makes at least as many images per second per process as Ultralytics'
(640 px, mosaic on). This script generates the built-in synthetic set in Ultralytics layout (``--images`` JPEGs
of ``--src-size`` px with a few boxes each, reused when already there), then times each side in its own fresh
process, so neither inherits the other's caches or thread pools:

- yoloswap: ``DetectionDataset(augment=True)`` with the default ``AugmentConfig`` (mosaic 1.0), items through
  ``collate``, exactly as the trainer's DataLoader calls them with ``--workers 0``;
- Ultralytics: ``build_yolo_dataset`` with its default hyperparameters (``mode="train"``, mosaic 1.0, no cache),
  items through ``YOLODataset.collate_fn``.

Both sides set ``cv2.setNumThreads(0)`` and one torch thread, walk a seeded random permutation of the images,
skip ``--warmup`` batches (imports, first-touch of files, Ultralytics' mosaic buffer filling), then time
``--batches`` batches of ``--batch-size``. The sides run alternately ``--rounds`` times (A B A B ...) and the
median of each side is reported with every single figure, because on a shared machine a neighbour's burst hits
whichever side happens to be running.

Ultralytics is imported only in its own child process and never by yoloswap (it is not a dependency). Point
``--ultralytics-path`` at a folder it was installed into, or leave it empty when the Python running this script
can import it. It runs offline: ``YOLO_OFFLINE=1`` and a private config folder. Installing it beside yoloswap's
venv without touching that venv's packages (its opencv-python would shadow opencv-python-headless)::

    .venv/bin/python -m pip install --no-deps --target /tmp/ultra ultralytics ultralytics-thop polars \
        polars-runtime-32 matplotlib contourpy cycler fonttools kiwisolver pyparsing python-dateutil six requests \
        urllib3 idna charset-normalizer certifi psutil packaging

Run:  .venv/bin/python bench/loader_speed.py --ultralytics-path /tmp/ultra [--rounds 7] [--src-size 1280]
A benchmark, not a test: the figures depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIDES = ("yoloswap", "ultralytics")


def generate(root: Path, count: int, src_size: int) -> Path:
    """The synthetic set (Ultralytics layout) under ``root``; returns its data YAML."""
    from yoloswap.data.synthetic import write_demo_data

    return write_demo_data(root, num_train=count, num_val=4, img_size=src_size, seed=0)


def time_batches(next_batch, warmup: int, batches: int, batch_size: int) -> float:
    """Images per second over ``batches`` calls of ``next_batch`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        next_batch()
    start = time.perf_counter()
    for _ in range(batches):
        next_batch()
    return batches * batch_size / (time.perf_counter() - start)


def index_stream(n: int, batch_size: int, seed: int):
    """Batches of indices from seeded random permutations of range(n), epoch after epoch (like shuffle=True)."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for k in range(0, n - batch_size + 1, batch_size):
            yield order[k : k + batch_size]


def run_yoloswap(args: argparse.Namespace) -> float:
    from yoloswap.data.dataset import DetectionDataset, collate
    from yoloswap.data.formats import load_data_config

    samples = load_data_config(args.data).train.samples
    ds = DetectionDataset(samples, args.img_size, augment=True, seed=0)
    stream = index_stream(len(ds), args.batch_size, seed=0)
    return time_batches(lambda: collate([ds[i] for i in next(stream)]), args.warmup, args.batches, args.batch_size)


def run_ultralytics(args: argparse.Namespace) -> float:
    config_dir = Path(tempfile.mkdtemp(prefix="loader-speed-ultra-"))
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.dataset import YOLODataset

    import yaml

    names = yaml.safe_load(Path(args.data).read_text())["names"]
    cfg = get_cfg(overrides={"imgsz": args.img_size, "batch": args.batch_size, "task": "detect"})
    data = {"names": dict(enumerate(names)), "nc": len(names), "channels": 3}
    ds = build_yolo_dataset(cfg, str(Path(args.data).parent / "images" / "train"), args.batch_size, data,
                            mode="train")  # fmt: skip
    assert ds.augment and cfg.mosaic == 1.0, "Ultralytics' training dataset must augment with mosaic"
    stream = index_stream(len(ds), args.batch_size, seed=0)
    return time_batches(lambda: YOLODataset.collate_fn([ds[i] for i in next(stream)]), args.warmup, args.batches,
                        args.batch_size)  # fmt: skip


def child(args: argparse.Namespace) -> None:
    """One side, in this process: print one JSON line with its images/s."""
    import cv2
    import torch

    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    random.seed(0)
    speed = {"yoloswap": run_yoloswap, "ultralytics": run_ultralytics}[args.side](args)
    print(json.dumps({"side": args.side, "img_per_s": speed}))


def spawn(side: str, args: argparse.Namespace) -> float:
    env = dict(os.environ)
    if side == "ultralytics" and args.ultralytics_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(args.ultralytics_path), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, __file__, "--side", side, "--data", str(args.data), "--img-size", str(args.img_size),
           "--batch-size", str(args.batch_size), "--batches", str(args.batches), "--warmup", str(args.warmup)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["img_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="generated training images")
    parser.add_argument("--src-size", type=int, default=640, help="side of the generated (square) images")
    parser.add_argument("--img-size", type=int, default=640, help="training image size")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=8, help="untimed batches per run (fills Ultralytics' buffer)")
    parser.add_argument("--rounds", type=int, default=5, help="A/B runs of each side, interleaved")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "yoloswap-loader-speed")
    parser.add_argument("--ultralytics-path", type=Path, default=None, help="folder Ultralytics is installed in")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: run one side in this process
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args)
        return

    args.data = generate(args.root / f"{args.images}x{args.src_size}", args.images, args.src_size)
    print("## Training loader, one process each (bench/loader_speed.py)\n")
    print(f"- python {platform.python_version()}, {os.cpu_count()} CPUs; {args.images} generated {args.src_size} px "
          f"JPEGs at {args.data.parent}; {args.img_size} px, mosaic on, batch {args.batch_size}, {args.warmup} warmup "
          f"+ {args.batches} timed batches per run; cv2 threads 0, torch threads 1; {args.rounds} interleaved rounds")
    print(f"- load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    figures: dict[str, list[float]] = {side: [] for side in args.sides}
    for r in range(args.rounds):
        for side in args.sides if r % 2 == 0 else reversed(args.sides):  # alternate who goes first
            figures[side].append(spawn(side, args))
            print(f"round {r + 1}: {side:12s} {figures[side][-1]:7.1f} img/s", flush=True)
    medians = {side: statistics.median(v) for side, v in figures.items()}
    print("\n| side | median img/s | runs |\n|---|---:|---|")
    for side, v in figures.items():
        print(f"| {side} | {medians[side]:.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
    if len(medians) == 2:
        print(f"\nratio yoloswap / ultralytics (medians): {medians['yoloswap'] / medians['ultralytics']:.2f}")
    print(f"load average at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "medians": medians, "args": {
            k: str(v) for k, v in vars(args).items()}}, indent=1))


if __name__ == "__main__":
    main()
