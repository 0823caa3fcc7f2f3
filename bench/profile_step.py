"""Where a training step's time goes, for one preset at one size, as yoloswap's own loop runs it.

    python bench/profile_step.py --preset convnext-tiny --img-size 160 --threads 1
    python bench/profile_step.py --preset yolov5n resnet50 mobilenetv3-small --steps 6 --json prof.json

The run is built by ``training.setup.build_run`` on the built-in set (the same model, precision, optimizer, EMA
and loader the trainer uses), then:

1. **the loop's step**: ``training.loop.train_one_epoch`` over ``--steps`` batches (after ``--warmup``), timed
   as a whole, and once more under ``torch.profiler`` for the top operators by self CPU (or CUDA) time;
2. **its parts, each alone on the same batch**: the loader's wait for a batch, backbone forward + backward,
   neck forward + backward, head forward + backward, loss and assigner forward + backward, optimizer step + EMA.
   Each part's input is detached and needs grad, so its backward is its own; the parts' sum next to the loop's
   step shows what the split leaves out (autograd's bookkeeping across parts, the schedule, the read-out);
3. **FLOPs**: forward GFLOPs of the detector at the size (torch's FlopCounterMode) × 3 for a training step,
   against the peak of ``torch.mm`` measured here on 2048² (bf16 and fp32), so a step's share of the peak is known.

A benchmark, not a test: it prints a table per preset (and ``--json``). Pin it to a core for one-core figures
(``taskset -c 1 python bench/profile_step.py --threads 1``) and say what else ran beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from yoloswap.config.options import TrainOptions  # noqa: E402
from yoloswap.training import loop  # noqa: E402
from yoloswap.training.precision import autocast_for  # noqa: E402
from yoloswap.training.setup import build_run  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 1.5) -> float:
    """GFLOP/s of ``torch.mm`` on n×n matrices in ``dtype``, best of the calls made in ``seconds``."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


class _Batches:
    """The first ``n`` batches of a loader, with a length (the loop sizes its epoch by ``len``)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def _timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _fwd_bwd(module, inputs, amp_dtype, device, reduce, owner):
    """A closure: forward ``module`` on detached copies of ``inputs`` that need grad, then backward of a sum;
    ``owner`` (the detector) drops the gradients after each call."""

    def step():
        xs = [t.detach().requires_grad_(t.is_floating_point()) for t in inputs]
        with autocast_for(device, amp_dtype):
            out = module(*xs)
        reduce(out).backward()
        owner.zero_grad(set_to_none=True)

    return step


def _sum_all(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.float().mean()
    if isinstance(out, (list, tuple)):
        return sum(_sum_all(o) for o in out)
    return out[0].float()  # (loss, items)


def profile_preset(preset: str, img_size: int, batch_size: int, steps: int, warmup: int, device: str,
                   head: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        given = dict(backbone=preset, img_size=img_size, batch_size=batch_size, workers=0, weights="none",
                     epochs=1, device=device, seed=0)
        if head:
            given["head"] = head
        options = TrainOptions.for_data(None, given)
        run, (train_loader, _) = build_run(options, Path(tmp) / "run", log=lambda *a, **k: None)
        it = iter(train_loader)
        t = time.perf_counter()
        batches = [next(it) for _ in range(warmup + steps)]
        data_s = (time.perf_counter() - t) / len(batches)
        model = loop.unwrap(run.model)
        loss_fn = model.head.make_loss(img_size)
        dev = run.device

        # 1. the loop's own step
        loop.train_one_epoch(run, _Batches(batches[:warmup]), loss_fn, 0)
        t = time.perf_counter()
        loop.train_one_epoch(run, _Batches(batches[warmup:]), loss_fn, 0)
        step_s = (time.perf_counter() - t) / steps
        activities = [torch.profiler.ProfilerActivity.CPU]
        if dev.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            loop.train_one_epoch(run, _Batches(batches[warmup:]), loss_fn, 0)
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        events = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
        total_us = sum(getattr(e, key) for e in events) or 1.0
        top = [{"op": e.key, "ms_per_step": getattr(e, key) / 1e3 / steps, "share": getattr(e, key) / total_us,
                "calls_per_step": e.count / steps} for e in events[:15]]

        # 2. the parts, each alone on the first timed batch
        images, targets, _ = batches[warmup]
        x = (images.to(dev).float() / 255).contiguous(memory_format=torch.channels_last)
        targets = targets.to(dev)
        model.train()
        with torch.no_grad(), autocast_for(dev, run.amp_dtype):
            x = ((x - model.mean) / model.std).contiguous(memory_format=torch.channels_last)  # as Detector.forward
            feats = [f.float() for f in model.backbone(x)]
            neck_out = [f.float() for f in model.neck(feats)]
            raw = [o.float() for o in model.head(neck_out)]
        repeats = max(steps // 2, 2)
        parts = {
            "data (loader, one process)": data_s,
            "backbone fwd+bwd": _timed(_fwd_bwd(model.backbone, [x], run.amp_dtype, dev, _sum_all, model), repeats),
            "neck fwd+bwd": _timed(_fwd_bwd(lambda *f: model.neck(list(f)), feats, run.amp_dtype, dev, _sum_all, model),
                                   repeats),
            "head fwd+bwd": _timed(_fwd_bwd(lambda *f: model.head(list(f)), neck_out, run.amp_dtype, dev, _sum_all, model),
                                   repeats),
            "loss + assigner fwd+bwd": _timed(_loss_step(loss_fn, raw, targets), repeats),
            "optimizer + EMA": _timed(lambda: _optimizer_only(run), repeats),
        }

        # 3. FLOPs of a step against the measured matmul peak
        from yoloswap.models.complexity import count_gflops

        fwd = count_gflops(model, torch.zeros(batch_size, 3, img_size, img_size, device=dev),
                           call=lambda t: model(t))
        step_gflop = 3 * fwd
        return {"preset": preset, "img_size": img_size, "batch": batch_size, "steps": steps,
                "amp": str(run.amp_dtype).replace("torch.", "") if run.amp_dtype else "fp32",
                "step_s": step_s, "img_per_s": batch_size / step_s, "parts_s": parts,
                "step_gflop": step_gflop, "gflops_achieved": step_gflop / step_s, "top_ops": top}


def _loss_step(loss_fn, raw, targets):
    def step():
        outs = [o.detach().requires_grad_(True) for o in raw]
        loss, _ = loss_fn(outs, targets)
        loss.backward()

    return step


def _optimizer_only(run) -> None:
    """The loop's optimizer step (unscale, clip, step, EMA) on gradients that exist."""
    for p in run.model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    loop._optimizer_step(run)


def report(r: dict, peaks: dict) -> str:
    lines = [f"### {r['preset']} at {r['img_size']} px, batch {r['batch']}, {r['amp']}", "",
             f"loop step: **{r['step_s'] * 1e3:.0f} ms** ({r['img_per_s']:.1f} img/s); "
             f"{r['step_gflop']:.1f} GFLOP per step (3 × forward) → {r['gflops_achieved']:.0f} GFLOP/s = "
             f"{r['gflops_achieved'] / peaks['bf16' if r['amp'] == 'bfloat16' else 'fp32']:.0%} of the "
             f"{'bf16' if r['amp'] == 'bfloat16' else 'fp32'} matmul peak", "",
             "| part, alone | ms | share of the loop step |", "|---|---:|---:|"]
    for name, s in r["parts_s"].items():
        lines.append(f"| {name} | {s * 1e3:.1f} | {s / r['step_s']:.0%} |")
    parts = sum(v for k, v in r["parts_s"].items() if not k.startswith("data"))
    lines += [f"| sum of the model parts | {parts * 1e3:.1f} | {parts / r['step_s']:.0%} |", "",
              "| top operators (self time) | ms/step | share | calls/step |", "|---|---:|---:|---:|"]
    for op in r["top_ops"]:
        lines.append(f"| `{op['op']}` | {op['ms_per_step']:.1f} | {op['share']:.0%} | {op['calls_per_step']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["convnext-tiny", "yolov5n", "resnet50", "mobilenetv3-small"])
    parser.add_argument("--img-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--head", default=None, help="yolov5 or yolov8 (default: the preset's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peaks = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    print(f"## profile_step on {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.2f}; matmul peak 2048²: "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s, fp32 {peaks['fp32']:.0f} GFLOP/s\n", flush=True)
    results = []
    for preset in args.preset:
        r = profile_preset(preset, args.img_size, args.batch_size, args.steps, args.warmup, args.device, args.head)
        results.append(r)
        print(report(r, peaks) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"peaks": peaks, "results": results}, indent=1))


if __name__ == "__main__":
    main()
