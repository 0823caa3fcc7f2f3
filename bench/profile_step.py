"""Where a training step goes: torch.profiler over N steps of yoloswap's own loop, split into parts.

    PYTHONPATH=. python bench/profile_step.py --backbone convnext-tiny --head yolov8 --img-size 160 --steps 6 --threads 1

The run is built by ``train.setup.build_run`` and stepped by ``train.loop.train_one_epoch`` (the loop the CLI runs,
on a loader cut to ``--warmup + --steps`` batches of the built-in set, or ``--data``); nothing of the step is
re-implemented here. Only ranges are added around what the loop already does:

- ``data wait``: the loader's ``next()`` (with ``--workers 0``: the mosaic/letterbox work itself);
- ``backbone fwd`` / ``neck fwd`` / ``head fwd``: forward hooks on the detector's three parts;
- ``loss+assigner``: the head's loss callable (forward only);
- ``loss bwd`` / ``head bwd`` / ``neck bwd`` / ``backbone bwd``: the backward pass cut where the gradient reaches
  each part (a hook on the loss, then backward pre-hooks on head, neck and backbone);
- ``optimizer+EMA``: the loop's optimizer step (unscale, clip, step, zero_grad, EMA update);
- ``host syncs``: the loop's read-back of the loss items.

It prints the time per part, the top 15 operators by self time, and the FLOPs of one step (forward + backward,
``torch.utils.flop_counter``) against the peak of a large square ``torch.mm`` in bf16 and fp32 measured here with
the same thread count. On CUDA the parts are CPU-side ranges (the device time is in the operator table).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from pathlib import Path
import tempfile

import torch

PARTS = ("data wait", "backbone fwd", "neck fwd", "head fwd", "loss+assigner", "loss bwd", "head bwd", "neck bwd",
         "backbone bwd", "optimizer+EMA", "host syncs")


class _Range:
    """A named profiler range opened in one hook and closed in another (same thread), also timed by the clock."""

    def __init__(self, totals: dict):
        self.totals, self.open = totals, None

    def start(self, name: str) -> None:
        self.stop()
        rf = torch.autograd.profiler.record_function(name)
        rf.__enter__()
        self.open = (name, rf, time.perf_counter())

    def stop(self) -> None:
        if self.open is not None:
            name, rf, t0 = self.open
            rf.__exit__(None, None, None)
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t0
            self.open = None


def instrument(run, loss_fn, totals: dict, bwd: _Range):
    """Hooks on the detector's parts and wrappers on the loss, the optimizer step and the read-out, each adding a
    named range; returns the wrapped loss callable."""
    from yoloswap.training import loop
    from yoloswap.training.ema import unwrap

    model = unwrap(run.model)
    fwd = _Range(totals)

    def on_outputs(outputs, name):
        """The gradient has reached this part's outputs (the engine runs them after every later op): the part
        after it, in backward order, is done."""
        for o in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            if isinstance(o, torch.Tensor) and o.requires_grad:
                o.register_hook(lambda g: (bwd.start(f"{name} bwd") if bwd.open is None or
                                           bwd.open[0] != f"{name} bwd" else None, g)[1])

    handles = []
    for name, part in (("backbone", model.backbone), ("neck", model.neck), ("head", model.head)):
        handles.append(part.register_forward_pre_hook(lambda m, a, n=name: fwd.start(f"{n} fwd")))
        handles.append(part.register_forward_hook(lambda m, a, o, n=name: (fwd.stop(), on_outputs(o, n))[0]))

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            with torch.autograd.profiler.record_function(name):
                t0 = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    totals[name] = totals.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    def loss_with_ranges(outputs, targets):
        bwd.stop()  # the previous step's backbone bwd ended before this forward
        loss, items = timed("loss+assigner", loss_fn)(outputs, targets)
        loss.register_hook(lambda g: (bwd.start("loss bwd"), g)[1])
        return loss, items

    originals = (loop._optimizer_step, loop._read_out)

    def optimizer_step(r):
        bwd.stop()
        return timed("optimizer+EMA", originals[0])(r)

    def restore():
        loop._optimizer_step, loop._read_out = originals
        for handle in handles:
            handle.remove()

    loop._optimizer_step = optimizer_step
    loop._read_out = timed("host syncs", originals[1])
    return loss_with_ranges, restore


class _CutLoader:
    """The run's training loader cut to ``n`` batches, its ``next()`` timed as ``data wait``."""

    def __init__(self, loader, n: int, totals: dict, bwd: _Range):
        self.loader, self.n, self.totals, self.bwd = loader, n, totals, bwd
        self.dataset = loader.dataset

    def __len__(self):
        return self.n

    def __iter__(self):
        it = iter(itertools.islice(itertools.cycle(self.loader), self.n))
        while True:
            self.bwd.stop()
            with torch.autograd.profiler.record_function("data wait"):
                t0 = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    return
                self.totals["data wait"] = self.totals.get("data wait", 0.0) + time.perf_counter() - t0
            yield batch


def mm_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of the best of ``reps`` ``torch.mm`` of two n×n matrices."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """A convolution's backward: each gradient asked for (input, weight) costs the forward's multiply-adds.

    torch's own formula (torch 2.14) leaves the groups out, so it counts a depthwise convolution's backward
    ``groups`` times over: 97× for ConvNeXt-T's first stage, which made the ConvNeXt step look like 717 GFLOPs
    instead of 303 (RESULTS §13 says which figures that affected)."""
    macs = math.prod(x_shape if transposed else grad_out_shape) * math.prod(w_shape[1:])
    return 2 * macs * (int(output_mask[0]) + int(output_mask[1]))


def step_flops(run, loss_fn, loader) -> int:
    """FLOPs of one training step's forward + backward (convolutions and matrix products), counted by torch
    with :func:`conv_backward_flops` for the convolutions' backward."""
    from torch.utils.flop_counter import FlopCounterMode

    from yoloswap.training.precision import autocast_for

    images, targets, _ = next(iter(loader))
    x = (images.float() / 255).to(run.device).contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False,
                              custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flops})
    with counter:
        with autocast_for(run.device, run.amp_dtype):
            outputs = run.model(x)
        loss, _ = loss_fn([o.float() for o in outputs], targets.to(run.device))
        loss.backward()
    run.optimizer.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="convnext-tiny")
    p.add_argument("--head", default="yolov8")
    p.add_argument("--img-size", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=6, help="profiled steps")
    p.add_argument("--warmup", type=int, default=2, help="steps before the profile (oneDNN picks kernels)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=None)
    p.add_argument("--weights", default="none")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: what a run chooses (measured per model on a CPU)")
    p.add_argument("--trace", default=None, help="write a Chrome trace here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from yoloswap.config.options import TrainOptions
    from yoloswap.training.loop import train_one_epoch
    from yoloswap.training.setup import build_run

    given = {"backbone": args.backbone, "head": args.head, "img_size": args.img_size, "batch_size": args.batch_size,
             "weights": args.weights, "device": args.device, "workers": 0, "amp": args.amp != "fp32",
             "epochs": 16}
    options = TrainOptions.for_data(args.data, given)
    quiet = lambda *a, **k: None  # noqa: E731
    run, (train_loader, _) = build_run(options, Path(tempfile.mkdtemp()), quiet)
    if args.amp == "bf16":
        run.amp_dtype = torch.bfloat16
    from yoloswap.training.ema import unwrap

    loss_fn = unwrap(run.model).head.make_loss(options.img_size)
    run.loss_names = tuple(loss_fn.names)
    flops = step_flops(run, loss_fn, train_loader)

    totals: dict = {}
    bwd = _Range(totals)
    wrapped_loss, restore = instrument(run, loss_fn, totals, bwd)
    try:
        train_one_epoch(run, _CutLoader(train_loader, args.warmup, totals, bwd), wrapped_loss, 0)
        totals.clear()
        activities = [torch.profiler.ProfilerActivity.CPU]
        if run.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            t0 = time.perf_counter()
            train_one_epoch(run, _CutLoader(train_loader, args.steps, totals, bwd), wrapped_loss, 1)
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        bwd.stop()
    finally:
        restore()
    # the same steps again without the profiler and the hooks: their own overhead is not the step's
    t0 = time.perf_counter()
    train_one_epoch(run, _CutLoader(train_loader, args.steps, {}, _Range({})), loss_fn, 2)
    plain = (time.perf_counter() - t0) / args.steps

    per_step = wall / args.steps
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[run.amp_dtype]
    print(f"\n## {args.backbone} + {args.head}, {args.img_size} px, batch {args.batch_size}, {precision}, "
          f"{args.threads} thread(s), {run.device}")
    print(f"step: {1000 * plain:.0f} ms without the profiler, {1000 * per_step:.0f} ms under it "
          f"({args.steps} steps after {args.warmup} warm-up)\n")
    print("| part | ms / step | share |\n|---|---:|---:|")
    for name in PARTS:
        ms = 1000 * totals.get(name, 0.0) / args.steps
        print(f"| {name} | {ms:.1f} | {100 * ms / (1000 * per_step):.0f}% |")
    rest = per_step - sum(totals.get(n, 0.0) for n in PARTS) / args.steps
    print(f"| other (loop, schedule, casts) | {1000 * rest:.1f} | {100 * rest / per_step:.0f}% |")

    sort = "self_cuda_time_total" if run.device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if e.key not in PARTS and not e.key.startswith("Optimizer.")
              and not e.key.startswith("ProfilerStep")]
    events.sort(key=lambda e: getattr(e, sort), reverse=True)
    print("\n| top operator (self time) | ms / step | calls / step |\n|---|---:|---:|")
    for e in events[:15]:
        print(f"| `{e.key}` | {getattr(e, sort) / 1000 / args.steps:.1f} | {e.count / args.steps:.0f} |")

    bf16_peak, fp32_peak = mm_peak(torch.bfloat16, run.device), mm_peak(torch.float32, run.device)
    achieved = flops / plain / 1e9
    print(f"\nFLOPs per step (fwd + bwd): {flops / 1e9:.1f} G → {achieved:.0f} GFLOP/s at {1000 * plain:.0f} ms; "
          f"torch.mm 2048² peak here: bf16 {bf16_peak:.0f}, fp32 {fp32_peak:.0f} GFLOP/s → "
          f"{100 * achieved / (bf16_peak if precision == 'bf16' else fp32_peak):.0f}% of the {precision} peak")
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
