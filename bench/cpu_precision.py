"""Training-step speed on the CPU in fp32 and in bf16 autocast: the figures behind ``training/precision.py``.

One forward and backward of the assembled detector (channels_last, as the trainer runs it) on a random batch, per
backbone and precision; the best of ``--steps`` timed steps after one warm-up step. bf16 can pay only where the CPU
computes it natively (AVX512-BF16, AMX), and even there not for every model (depthwise convolutions are slower in
bf16), which is why a training run measures its own model once; the script says which CPU this is.

    python bench/cpu_precision.py                                   # the presets below, at 224 / 256 px
    python bench/cpu_precision.py --backbone convnext-tiny:224 --batch 16 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from yoloswap.assembly import build_detector  # noqa: E402
from yoloswap.backbones.resolve import resolve_backbone  # noqa: E402
from yoloswap.training.precision import cpu_has_native_bf16, cpu_model  # noqa: E402

DEFAULT = ["yolov5n:256", "resnet50:224", "convnext-tiny:224", "mobilenetv3-small:224", "efficientnet-b1:224"]


def step_rate(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, steps: int) -> float:
    """Images per second of the fastest of ``steps`` training steps (after one untimed warm-up step)."""
    best = float("inf")
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = model(x)
            loss = sum(o.float().square().mean() for o in out)
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i:
            best = min(best, time.perf_counter() - start)
    return x.shape[0] / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", action="append", help="NAME:SIZE (repeatable); default: " + ", ".join(DEFAULT))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}, batch {args.batch}")
    print("| backbone | size | fp32 img/s | bf16 img/s | bf16 / fp32 |")
    print("|---|---:|---:|---:|---:|")
    for item in args.backbone or DEFAULT:
        name, size = item.rsplit(":", 1)
        torch.manual_seed(0)
        model, _ = build_detector(resolve_backbone(name), 6, (int(size), int(size)))
        model.train().to(memory_format=torch.channels_last)
        x = torch.rand(args.batch, 3, int(size), int(size)).contiguous(memory_format=torch.channels_last)
        fp32 = step_rate(model, x, None, args.steps)
        bf16 = step_rate(model, x, torch.bfloat16, args.steps)
        print(f"| {name} | {size} | {fp32:.1f} | {bf16:.1f} | {bf16 / fp32:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
