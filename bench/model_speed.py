"""Training-step speed of every assembled detector on CPU: forward + YOLOv5 loss + backward, images per second.

Issue 3 asks for forward+backward images/s on CPU for each preset at 320 px, batch 8. Each model is built the way
training builds it (probe → neck and head sized to the backbone, 80 classes), fed random [0, 1] images and a few
random boxes per image, so the loss matches real targets and backward really flows through every level. No
optimizer step is timed. Parameters and GFLOPs come from the same code as `yoloswap info` (at 640 px, the size the
published YOLOv5 tables use, and at the benchmark size), counted on the meta device so they cost nothing.

Heavy models get fewer iterations: `--warmup` untimed iterations (only one when the first already takes longer
than `--heavy-s`), then timed iterations until `--seconds` have passed (at least `--min-iters`, at most
`--max-iters`). The median iteration gives images/s; the fastest one is printed too, because on a shared machine
the median also measures the neighbours.

Run with the venv that has yoloswap installed:  python bench/model_speed.py
Prints a Markdown table to stdout. A benchmark, not a test: figures depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from yoloswap.assembly import build_detector, describe_detector
from yoloswap.config.presets import preset_names
from yoloswap.backbones.resolve import resolve_backbone

BOXES_PER_IMAGE = 4


def random_targets(batch: int, img_size: int, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """(batch·BOXES_PER_IMAGE, 6) [image, cls, cx, cy, w, h] in pixels; sizes span all three levels' anchors."""
    n = batch * BOXES_PER_IMAGE
    image = torch.arange(batch).repeat_interleave(BOXES_PER_IMAGE).float()  # (n,)
    cls = torch.randint(0, num_classes, (n,), generator=gen).float()  # (n,)
    wh = img_size * (0.05 + 0.6 * torch.rand(n, 2, generator=gen))  # (n, 2) 5%..65% of the image
    cxy = wh / 2 + (img_size - wh) * torch.rand(n, 2, generator=gen)  # (n, 2) box fully inside
    return torch.cat((image[:, None], cls[:, None], cxy, wh), dim=1)


def size_figures(name: str, num_classes: int, sizes: list[int]) -> dict[int, dict]:
    """`yoloswap info`'s figures (params, GFLOPs) at each size, measured on the meta device."""
    preset = resolve_backbone(name)
    out = {}
    for size in sizes:
        with torch.device("meta"):
            model, plan = build_detector(preset, num_classes, (size, size))
        out[size] = describe_detector(model, plan, (size, size))
    return out


def time_train_step(name: str, img_size: int, batch: int, num_classes: int, warmup: int, heavy_s: float,
                    seconds: float, min_iters: int, max_iters: int) -> dict:
    """Median and fastest seconds of one forward + loss + backward on CPU, and how many iterations were timed."""
    gen = torch.Generator().manual_seed(0)
    model, _ = build_detector(resolve_backbone(name), num_classes, (img_size, img_size))
    model.train()
    head = model.head
    loss_fn = head.make_loss(img_size)  # the head owns its loss (yolov5 or yolov8)
    images = torch.rand(batch, 3, img_size, img_size, generator=gen)  # (B, 3, S, S) in [0, 1]
    targets = random_targets(batch, img_size, num_classes, gen)

    def step() -> float:
        start = time.perf_counter()
        loss, _ = loss_fn(model(images), targets)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for _ in range(warmup):
        if step() > heavy_s:  # heavy model: one warmup iteration is enough, the budget goes to timed ones
            break
    times: list[float] = []
    while len(times) < max_iters and (len(times) < min_iters or sum(times) < seconds):
        times.append(step())
    return {"median_s": statistics.median(times), "best_s": min(times), "iters": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per model")
    parser.add_argument("--heavy-s", type=float, default=3.0, help="one warmup iteration if the first takes longer")
    parser.add_argument("--seconds", type=float, default=6.0, help="time each model for at least this long")
    parser.add_argument("--min-iters", type=int, default=2)
    parser.add_argument("--max-iters", type=int, default=10)
    parser.add_argument("--presets", nargs="*", default=None, help="default: every preset")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default (all cores)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    names = args.presets or preset_names()
    print("## Detector training-step speed on CPU (bench/model_speed.py)\n")
    print(f"- python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, {platform.platform()}")
    print(f"- {args.img_size}x{args.img_size}, batch {args.batch_size}, {args.num_classes} classes, "
          f"{BOXES_PER_IMAGE} random boxes per image; forward + YOLOv5Loss + backward (no optimizer step); "
          f"{args.warmup} warmup iterations (1 if the first takes > {args.heavy_s:g} s), then timed for "
          f">= {args.seconds:g} s ({args.min_iters}..{args.max_iters} iterations); images/s from the median "
          f"iteration, best = fastest iteration")
    print(f"- started {time.strftime('%Y-%m-%d %H:%M:%S')}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    sizes = sorted({640, args.img_size})
    gf_cols = " | ".join(f"GFLOPs @{s}" for s in sizes)
    print(f"| preset | params | {gf_cols} | median s / iter | images/s | best images/s | timed iters |")
    print("|---|---:|" + "---:|" * len(sizes) + "---:|---:|---:|---:|")
    total_start = time.perf_counter()
    for name in names:
        figures = size_figures(name, args.num_classes, sizes)
        speed = time_train_step(name, args.img_size, args.batch_size, args.num_classes, args.warmup,
                                args.heavy_s, args.seconds, args.min_iters, args.max_iters)
        gflops = " | ".join(f"{figures[s]['gflops']:.2f}" for s in sizes)
        print(f"| {name} | {figures[sizes[0]]['params']:,} | {gflops} | {speed['median_s']:.3f} | "
              f"{args.batch_size / speed['median_s']:.1f} | {args.batch_size / speed['best_s']:.1f} | "
              f"{speed['iters']} |", flush=True)
    print(f"\ntotal {time.perf_counter() - total_start:.0f} s; finished {time.strftime('%Y-%m-%d %H:%M:%S')}; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
