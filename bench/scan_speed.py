"""Label scan speed and memory: how long ``--data`` takes to read a large Ultralytics-layout set, cold and cached.

Generates ``--images`` small JPEGs with 1-5 boxes each (reused when already there), then, each in a fresh child
process: a cold scan (label cache deleted), a cached scan, and the peak resident memory of the process and the
pickled size of the scanned split (what a DataLoader worker would receive if the samples were shipped to it).
Ultralytics' ``YOLODataset`` is timed on the same folder only when ``ultralytics`` is importable (it is not a
yoloswap dependency); otherwise that side is reported as skipped.

Run:  .venv/bin/python bench/scan_speed.py [--images 20000] [--root /tmp/scan_bench]
A benchmark, not a test: the figures depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, pickle, resource, sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
side, data = sys.argv[1], Path(sys.argv[2])
t = time.perf_counter()
if side == "yoloswap":
    from yoloswap.data.formats import load_data_config
    split = load_data_config(data).train
    n, boxes = len(split.samples), sum(len(s.boxes) for s in split.samples)
    size = len(pickle.dumps(split.samples))
else:
    from ultralytics.data.dataset import YOLODataset
    ds = YOLODataset(img_path=str(data.parent / "images" / "train"), data={"names": {0: "a", 1: "b", 2: "c"},
                     "channels": 3}, augment=False)
    n, boxes = len(ds.labels), sum(len(l["cls"]) for l in ds.labels)
    size = len(pickle.dumps(ds.labels))
s = time.perf_counter() - t
print(json.dumps({"s": s, "images": n, "boxes": boxes, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "pickled_mb": size / 2**20}))
"""


def generate(root: Path, count: int) -> Path:
    import numpy as np
    from PIL import Image

    data = root / "data.yaml"
    if data.is_file() and len(list((root / "images" / "train").iterdir())) == count:
        return data
    rng = np.random.default_rng(0)
    (root / "images" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    base = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    for i in range(count):
        base.save(root / "images" / "train" / f"{i:06d}.jpg", quality=70)
        n = int(rng.integers(1, 6))
        rows = [f"{rng.integers(0, 3)} {x:.4f} {y:.4f} {w:.4f} {h:.4f}" for x, y, w, h in rng.uniform(0.2, 0.4, (n, 4))]
        (root / "labels" / "train" / f"{i:06d}.txt").write_text("\n".join(rows) + "\n")
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/train\nnames: [a, b, c]\n")
    return data


def run(side: str, data: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "YOLO_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, side, str(data)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{side} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--root", type=Path, default=Path("/tmp/scan_bench"))
    args = ap.parse_args()
    data = generate(args.root / str(args.images), args.images)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    sides = ["yoloswap"] + (["ultralytics"] if importlib.util.find_spec("ultralytics") else [])
    if len(sides) == 1:
        print("ultralytics is not importable here: its side is skipped")
    for side in sides:
        for cache in data.parent.glob("*.cache*"):
            cache.unlink()
        for cache in (data.parent / "labels").glob("*.cache"):
            cache.unlink()
        cold, warm = run(side, data), run(side, data)
        print(f"{side}: {cold['images']} images, {cold['boxes']} boxes; cold {cold['s']:.2f} s, cached "
              f"{warm['s']:.2f} s; peak RSS cold {cold['peak_mb']:.0f} MB, cached {warm['peak_mb']:.0f} MB; "
              f"split pickled {cold['pickled_mb']:.1f} MB")  # fmt: skip
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
