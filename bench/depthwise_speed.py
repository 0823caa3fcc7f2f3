"""Forward + backward of ConvNeXt-T's depthwise 7×7 convolutions (batch 16 at 160 px), plain against the faster
backward of yoloswap/models/depthwise.py, one thread, channels_last, in fp32 and under bf16 autocast.

    PYTHONPATH=. taskset -c 1 python bench/depthwise_speed.py

Prints per stage the best of 3 (ms, wall and the process's CPU time) and the largest relative gradient difference.
"""

from __future__ import annotations

import copy
import time

import torch

from yoloswap.models.depthwise import use_fast_depthwise_backward


def step(conv, x, amp):
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = conv(x)
    y.float().sum().backward()
    return x.grad, conv.weight.grad


def best(fn, reps=3):
    fn()
    wall = cpu = float("inf")
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return 1000 * wall, 1000 * cpu


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("| stage (C, H) | precision | plain ms (CPU) | fast ms (CPU) | max rel. grad diff |\n|---|---|---:|---:|---:|")
    for channels, size in ((96, 40), (192, 20), (384, 10), (768, 5)):
        plain = torch.nn.Conv2d(channels, channels, 7, padding=3, groups=channels).to(memory_format=torch.channels_last)
        fast = copy.deepcopy(plain)
        use_fast_depthwise_backward(fast)
        x = torch.randn(16, channels, size, size).contiguous(memory_format=torch.channels_last)
        for amp in (False, True):
            diffs = []
            for a, b in zip(step(fast, x, amp), step(plain, x, amp)):
                diffs.append(((a - b).abs().max() / b.abs().max()).item())
                plain.zero_grad(), fast.zero_grad()
            (pw, pc), (fw, fc) = best(lambda: step(plain, x, amp)), best(lambda: step(fast, x, amp))
            print(f"| {channels}, {size} | {'bf16' if amp else 'fp32'} | {pw:.1f} ({pc:.1f}) | {fw:.1f} ({fc:.1f}) | "
                  f"{max(diffs):.1e} |", flush=True)


if __name__ == "__main__":
    main()
