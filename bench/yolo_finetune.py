"""Fine-tuning from a genuine Ultralytics checkpoint against training from scratch (issue 31, bench/RESULTS.md §12).

Needs a venv with ``ultralytics`` (never a yoloswap dependency, never in the test suite); yoloswap itself runs as
its CLI in subprocesses, exactly as a user runs it:

    PYTHONPATH=. /work/benchvenv/bin/python bench/yolo_finetune.py --out /tmp/yolo-ft [--seeds 0,1,2]

1. **Source set A**, another data set than the target: the synthetic generator with another seed (other scenes)
   and another *label space*: three coarse classes (round: circle, ring; angular: square, triangle; spiky: cross,
   star) instead of six. A checkpoint trained on A therefore has the wrong number of classes for the target, so
   yoloswap must re-initialise the class layers, as with a COCO file.
2. **Ultralytics trains** ``yolov5nu.yaml`` (random init, no download) on A (``--source-epochs``, 160 px) and
   writes its usual ``weights/last.pt``: a pickled ``DetectionModel`` in half precision.
3. **yoloswap trains on the built-in set (target B)** twice per seed, same command, epochs and size:
   ``--weights last.pt`` (the whole detector from the Ultralytics file, class layers re-initialised) and
   ``--backbone yolov5n --head yolov8 --weights none`` (the same architecture from scratch). It prints the final
   mAP@.5 / mAP@.5:.95 of each run (yoloswap's evaluator, the same for both) and the mean and spread per arm.

Runs pin nothing; give the script the machine (``taskset -c N`` around it to pin it to one core).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

COARSE = {0: 0, 5: 0, 1: 1, 2: 1, 3: 2, 4: 2}  # circle, ring -> round; square, triangle -> angular; cross, star -> spiky
COARSE_NAMES = ["round", "angular", "spiky"]


def make_source_set(root: Path) -> Path:
    """Set A: other scenes (seed 7) under three coarse classes; returns its data.yaml."""
    from yoloswap.data.synthetic import write_demo_data

    data_yaml = write_demo_data(root / "generated", seed=7)
    coarse = root / "coarse"
    if coarse.exists():
        shutil.rmtree(coarse)
    shutil.copytree(data_yaml.parent, coarse)
    for label in (coarse / "labels").rglob("*.txt"):
        rows = [line.split() for line in label.read_text().splitlines() if line.strip()]
        label.write_text("".join(f"{COARSE[int(r[0])]} {' '.join(r[1:])}\n" for r in rows))
    (coarse / "yoloswap-dataset.json").unlink(missing_ok=True)
    (coarse / "data.yaml").write_text(
        f"path: {coarse}\ntrain: images/train\nval: images/val\nnames: {json.dumps(COARSE_NAMES)}\n"
    )
    return coarse / "data.yaml"


def ultralytics_checkpoint(data_yaml: Path, out: Path, epochs: int) -> Path:
    from ultralytics import YOLO

    model = YOLO("yolov5nu.yaml")
    model.train(data=str(data_yaml), epochs=epochs, imgsz=160, batch=16, workers=0, device="cpu", seed=0,
                project=str(out), name="ultralytics-on-A", exist_ok=True, plots=False, amp=False, verbose=False)
    path = out / "ultralytics-on-A" / "weights" / "last.pt"
    if not path.is_file():
        raise SystemExit(f"Ultralytics wrote no {path}")
    return path


def yoloswap_run(args: list[str], out: Path, seed: int, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "yoloswap", "train", *args, "--epochs", str(epochs), "--seed", str(seed),
           "--out", str(out), "--exist-ok"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    last = rows[-1]
    log = (done.stdout + done.stderr).splitlines()  # the log goes to stderr, results to stdout
    weights_line = " | ".join(line.strip() for line in log if line.startswith("weights:"))
    return {"map50": float(last["metrics/mAP50"]), "map": float(last["metrics/mAP50-95"]),
            "wall_s": round(time.perf_counter() - start, 1), "weights": weights_line.strip()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/yolo-ft"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--source-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=10, help="target epochs, the same for both arms")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch
    import ultralytics

    print(f"ultralytics {ultralytics.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    data_a = make_source_set(args.out / "set-A")
    start = time.perf_counter()
    ckpt = ultralytics_checkpoint(data_a, args.out, args.source_epochs)
    print(f"source: Ultralytics yolov5nu on set A ({len(COARSE_NAMES)} classes), {args.source_epochs} epochs in "
          f"{time.perf_counter() - start:.0f} s -> {ckpt}")
    arms = {"from the Ultralytics file": ["--weights", str(ckpt)],
            "from scratch": ["--backbone", "yolov5n", "--head", "yolov8", "--weights", "none"]}
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for arm, flags in arms.items():
            tag = "finetune" if arm.startswith("from the") else "scratch"
            row = yoloswap_run(flags, args.out / f"{tag}-seed{seed}", seed, args.epochs)
            results[arm].append(row)
            print(json.dumps({"arm": arm, "seed": seed, **row}), flush=True)
    print(f"\n| start (built-in set, yolov5n + yolov8 head, {args.epochs} epochs, 160 px) | mAP@.5 per seed | "
          "mean mAP@.5 | mean mAP@.5:.95 |")
    print("|---|---|---:|---:|")
    for arm, rows in results.items():
        per_seed = ", ".join(f"{r['map50']:.3f}" for r in rows)
        print(f"| {arm} | {per_seed} | {statistics.mean(r['map50'] for r in rows):.3f} | "
              f"{statistics.mean(r['map'] for r in rows):.3f} |")
    (args.out / "finetune.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
