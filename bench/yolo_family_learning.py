"""Learning at equal epochs: the YOLO-family backbones against YOLOv5-s's CSPDarknet (issue 32, bench/RESULTS.md §14).

Each backbone under the same YOLOv5 neck and head, trained from scratch on the built-in set with the built-in
recipe (16 epochs, 160 px, batch 16, ``--weights none``; only ``--backbone`` and ``--seed`` differ), over several seeds. One
subprocess per run, each pinned to one core and one thread; with two cores, two runs go side by side (one per
core), so the s/epoch column is "one core while the other core trains too". Prints a Markdown table of the final
epoch's mAP (yoloswap's evaluator for all) and writes ``OUT/learning.json``.

    PYTHONPATH=. .venv/bin/python bench/yolo_family_learning.py --out /tmp/yolo-family [--cores 0,1]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue


def run_one(backbone: str, seed: int, epochs: int, out: Path, cores: Queue) -> dict:
    core = cores.get()
    try:
        folder = out / f"{backbone}-seed{seed}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "YOLOSWAP_HOME": str(out / "home")}
        cmd = ["taskset", "-c", str(core), sys.executable, "-m", "yoloswap", "train", "--backbone", backbone,
               "--weights", "none",  # from scratch for all: cspnext-s would otherwise start from ImageNet
               "--epochs", str(epochs), "--seed", str(seed), "--out", str(folder), "--exist-ok"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
        rows = list(csv.DictReader(open(folder / "metrics.csv")))
        epoch_s = statistics.median(float(r["time/epoch_s"]) for r in rows)
        row = {"backbone": backbone, "seed": seed, "map50": float(rows[-1]["metrics/mAP50"]),
               "map": float(rows[-1]["metrics/mAP50-95"]), "epoch_s": round(epoch_s, 1),
               "wall_s": round(time.perf_counter() - start, 1), "core": core}
        print(json.dumps(row), flush=True)
        return row
    finally:
        cores.put(core)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/yolo-family"))
    parser.add_argument("--backbones", default="yolov5s,yolov6s,yolov8s,cspnext-s")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--cores", default="0,1")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cores: Queue = Queue()
    for core in args.cores.split(","):
        cores.put(int(core))
    backbones, seeds = args.backbones.split(","), [int(s) for s in args.seeds.split(",")]
    # warm the built-in set once, so parallel first runs do not race to generate it
    subprocess.run([sys.executable, "-c", "from yoloswap.data.synthetic import builtin_data_yaml; builtin_data_yaml()"],
                   env={**os.environ, "YOLOSWAP_HOME": str(args.out / "home")}, check=True)
    jobs = [(b, s) for s in seeds for b in backbones]
    print(f"load before: {os.getloadavg()}", flush=True)
    with ThreadPoolExecutor(max_workers=len(args.cores.split(","))) as pool:
        rows = list(pool.map(lambda job: run_one(job[0], job[1], args.epochs, args.out, cores), jobs))
    print(f"load after: {os.getloadavg()}")
    print(f"\n| backbone (yolov5 neck + head, {args.epochs} epochs from scratch, 160 px) | mAP@.5 per seed | "
          "mean ± sd mAP@.5 | mean mAP@.5:.95 | s/epoch (median) |")
    print("|---|---|---:|---:|---:|")
    for b in backbones:
        mine = [r for r in rows if r["backbone"] == b]
        m50 = [r["map50"] for r in mine]
        sd = statistics.stdev(m50) if len(m50) > 1 else 0.0
        print(f"| `{b}` | {', '.join(f'{v:.3f}' for v in m50)} | {statistics.mean(m50):.3f} ± {sd:.3f} | "
              f"{statistics.mean(r['map'] for r in mine):.3f} | {statistics.median(r['epoch_s'] for r in mine):.1f} |")
    (args.out / "learning.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
