"""Milliseconds per training step of yoloswap's own loop, for an A/B of two commits (bench/step_ab.sh).

    PYTHONPATH=/path/to/checkout python bench/step_time.py --backbone convnext-tiny --img-size 160 --steps 4

Self-contained on purpose (it imports only what both an old and a new checkout have: ``build_run`` and
``train_one_epoch``), so the same file times whichever yoloswap ``PYTHONPATH`` points at. The run is built as
``yoloswap train`` builds it (built-in set, ``--weights none``, ``--workers 0``) and stepped by ``train_one_epoch``
on the training loader cut to ``--warmup`` batches, then ``--steps`` batches, timed. Prints one line:
``<label> <CPU ms per step> <wall ms per step> <precision> loss <mean loss items of the timed steps>`` (the
same seeded batches and initial weights on both sides, so a change that alters the learning shows there too). On
a shared machine the CPU time of the (one-thread) process is the steadier figure: the wall clock also counts the
time other processes held the core.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch


class Cut:
    def __init__(self, loader, n):
        self.loader, self.n, self.dataset = loader, n, loader.dataset

    def __len__(self):
        return self.n

    def __iter__(self):
        return itertools.islice(itertools.cycle(self.loader), self.n)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--label", default="step")
    p.add_argument("--backbone", default="convnext-tiny")
    p.add_argument("--head", default="yolov8")
    p.add_argument("--img-size", type=int, default=160)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import importlib
    import os

    import yoloswap
    from yoloswap.config.options import TrainOptions

    # the training package is ``yoloswap.training`` since the API took the name ``train``; older commits (the
    # A/B's old side) have ``yoloswap.train``. Asked by folder, so the editable install's newer copy never answers.
    here = os.path.dirname(yoloswap.__file__)
    package = "yoloswap.training" if os.path.isdir(os.path.join(here, "training")) else "yoloswap.train"
    unwrap = importlib.import_module(f"{package}.ema").unwrap
    train_one_epoch = importlib.import_module(f"{package}.loop").train_one_epoch
    build_run = importlib.import_module(f"{package}.setup").build_run

    options = TrainOptions.for_data(None, {"backbone": args.backbone, "head": args.head, "img_size": args.img_size,
                                           "weights": "none", "device": "cpu", "workers": 0})
    run, (loader, _) = build_run(options, Path(tempfile.mkdtemp()), lambda *a, **k: None)
    loss_fn = unwrap(run.model).head.make_loss(options.img_size)
    run.loss_names = tuple(loss_fn.names)
    train_one_epoch(run, Cut(loader, args.warmup), loss_fn, 0)
    t0, c0 = time.perf_counter(), time.process_time()
    losses, _ = train_one_epoch(run, Cut(loader, args.steps), loss_fn, 1)
    ms, cpu_ms = (1000 * (time.perf_counter() - t0) / args.steps, 1000 * (time.process_time() - c0) / args.steps)
    print(f"{args.label} {cpu_ms:.0f} {ms:.0f} {'bf16' if run.amp_dtype == torch.bfloat16 else 'fp32'} "
          f"loss {' '.join(f'{v:.4f}' for v in losses)}", flush=True)


if __name__ == "__main__":
    main()
