"""A training step of two checkouts side by side: CPU seconds per loop step, interleaved, in one script.

    python bench/step_compare.py --old /tmp/yoloswap-old --new . --preset convnext-tiny --head yolov8 --rounds 4

Each round runs one child process per checkout (``PYTHONPATH`` set to it), alternating old and new, and each
child builds the run as the trainer does (built-in set, README's main-job options unless given), runs one untimed
step, then times ``--steps`` steps of ``training.loop.train_one_epoch`` (``train.loop`` in older checkouts) in
**process CPU time** on one thread: another process sharing the machine slows the wall clock, but hardly the CPU
time of a pinned single-threaded step. Prints both medians and the change. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, tempfile, time, torch
from pathlib import Path
torch.set_num_threads(1)
try:
    from yoloswap.training import loop
    from yoloswap.training.setup import build_run
except ImportError:
    from yoloswap.training import loop
    from yoloswap.training.setup import build_run
from yoloswap.config.options import TrainOptions
args = json.loads(sys.argv[1])
opts = TrainOptions.for_data(None, dict(args["options"], workers=0, weights="none", epochs=1, device="cpu"))
run, (loader, _) = build_run(opts, Path(tempfile.mkdtemp()) / "run", log=lambda *a, **k: None)
it = iter(loader)
batches = [next(it) for _ in range(args["steps"] + 1)]
class B(list):
    pass
model = loop.unwrap(run.model)
loss_fn = model.head.make_loss(opts.img_size)
loop.train_one_epoch(run, B(batches[:1]), loss_fn, 0)
start = time.process_time()
loop.train_one_epoch(run, B(batches[1:]), loss_fn, 0)
print(json.dumps({"cpu_s_per_step": (time.process_time() - start) / args["steps"], "amp": str(run.amp_dtype)}))
"""


def child(code: Path, options: dict, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code.resolve()), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"options": options, "steps": steps})],
                         capture_output=True, text=True, env=env, cwd=code)
    if out.returncode:
        raise SystemExit(f"{code}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="a checkout of the baseline (git worktree add)")
    parser.add_argument("--new", type=Path, default=Path("."))
    parser.add_argument("--preset", default="convnext-tiny")
    parser.add_argument("--head", default="yolov8")
    parser.add_argument("--img-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    options = {"backbone": args.preset, "head": args.head, "img_size": args.img_size, "batch_size": args.batch_size}
    times: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name in ("old", "new"):
            res = child(getattr(args, name), options, args.steps)
            times[name].append(res["cpu_s_per_step"])
            print(f"round {r + 1} {name}: {res['cpu_s_per_step'] * 1e3:.0f} ms CPU per step ({res['amp']})", flush=True)
    old, new = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"\n{args.preset} ({args.head} head) at {args.img_size} px, batch {args.batch_size}, one thread: "
          f"old {old * 1e3:.0f} ms, new {new * 1e3:.0f} ms CPU per step (medians of {args.rounds}): "
          f"{(new - old) / old:+.0%}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
