"""How fast the inspecting commands answer: `yoloswap --help`, `list-backbones`, and the probe per preset.

Issue 2's targets on a 2-core CPU: `--help` under 0.3 s (torch is imported lazily), `list-backbones` under 3 s, a
meta-device probe under 0.5 s per preset. Wall times of the CLI are measured as a user sees them: a fresh
subprocess each time. The probe is measured in-process after the heavy imports, so what the probe itself costs
(build + one forward) is not hidden behind what importing torch, torchvision and timm costs; both are printed.

Run with the venv that has yoloswap installed:  python bench/cli_speed.py
Prints Markdown tables to stdout. A benchmark, not a test: figures depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_HELP_S = 0.3
TARGET_LIST_S = 3.0
TARGET_META_PROBE_S = 0.5


def yoloswap_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m yoloswap``."""
    script = Path(sys.executable).with_name("yoloswap")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "yoloswap"]


def wall_time(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn to exit of one subprocess; a failing command stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr}")
    return seconds


def verdict(seconds: float, target: float) -> str:
    return f"< {target:g} s {'ok' if seconds < target else 'MISSED'}"


def bench_cli(repeats: int) -> list[tuple[str, float, str, str]]:
    """Rows (what, seconds, how measured, target) for --help and list-backbones."""
    base = yoloswap_command()
    rows = []
    with tempfile.TemporaryDirectory(prefix="yoloswap-bench-home-") as home:
        env = dict(os.environ, YOLOSWAP_HOME=home)
        wall_time(base + ["--help"], env)  # one untimed run: page cache, .pyc files
        helps = [wall_time(base + ["--help"], env) for _ in range(repeats)]
        rows.append(("yoloswap --help", statistics.median(helps), f"median of {repeats}",
                     verdict(statistics.median(helps), TARGET_HELP_S)))
        # YOLOSWAP_HOME is empty here, so the first listing measures every preset afresh.
        cold = wall_time(base + ["list-backbones"], env)
        rows.append(("yoloswap list-backbones, empty YOLOSWAP_HOME", cold, "1 run", verdict(cold, TARGET_LIST_S)))
        warm = [wall_time(base + ["list-backbones"], env) for _ in range(repeats)]
        rows.append(("yoloswap list-backbones, warm cache", statistics.median(warm), f"median of {repeats}",
                     verdict(statistics.median(warm), TARGET_LIST_S)))
        with tempfile.TemporaryDirectory(prefix="yoloswap-bench-home-") as fresh:
            probe_all = wall_time(base + ["probe-channels", "--device", "meta", "--json"],
                                  dict(os.environ, YOLOSWAP_HOME=fresh))
        rows.append(("yoloswap probe-channels --device meta (all presets, imports included)", probe_all,
                     "1 run", "-"))
    return rows


def bench_imports() -> list[tuple[str, float]]:
    """First-import cost of what a probe needs, in this process (which has imported none of it yet)."""
    rows = []
    for module in ("torch", "torchvision", "timm", "yoloswap.backbones.sources"):
        start = time.perf_counter()
        __import__(module)
        rows.append((module, time.perf_counter() - start))
    return rows


def bench_probes(img_size: int, repeats: int, devices: list[str]) -> list[dict]:
    """Probe seconds (build + dummy forward) per preset and device; median of ``repeats`` after the imports."""
    from yoloswap.config.presets import preset_names
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.probe import probe

    rows = []
    for name in preset_names():
        preset = resolve_backbone(name)
        row = {"preset": name}
        for device in devices:
            runs = [probe(preset, (img_size, img_size), device) for _ in range(repeats)]
            row[device] = statistics.median(r.seconds for r in runs)
            row["channels"] = runs[0].channels
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="subprocess runs per CLI command (median)")
    parser.add_argument("--probe-repeats", type=int, default=3, help="in-process probes per preset (median)")
    parser.add_argument("--img-size", type=int, default=640)
    args = parser.parse_args()

    print("## CLI and probe speed (bench/cli_speed.py)\n")
    print(f"- python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"- command: {' '.join(yoloswap_command())}; started {time.strftime('%Y-%m-%d %H:%M:%S')}; "
          f"load average at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")

    print("| command | seconds | measured | target |\n|---|---:|---|---|")
    for what, seconds, how, target in bench_cli(args.repeats):
        print(f"| `{what}` | {seconds:.3f} | {how} | {target} |", flush=True)

    imports = bench_imports()
    import torch

    print(f"\nImport cost (first import in the benchmark process, one measurement; torch threads: "
          f"{torch.get_num_threads()}):\n")
    print("| module | seconds |\n|---|---:|")
    for module, seconds in imports:
        print(f"| `{module}` | {seconds:.3f} |")
    print(f"| total | {sum(s for _, s in imports):.3f} |", flush=True)

    devices = ["cpu", "meta"]
    rows = bench_probes(args.img_size, args.probe_repeats, devices)
    print(f"\nProbe per preset at {args.img_size}x{args.img_size}, in-process after the imports above "
          f"(build + one dummy forward, median of {args.probe_repeats}; meta target < {TARGET_META_PROBE_S:g} s):\n")
    print("| preset | channels | cpu s | meta s | meta target |\n|---|---|---:|---:|---|")
    for row in rows:
        print(f"| {row['preset']} | {'/'.join(map(str, row['channels']))} | {row['cpu']:.3f} | {row['meta']:.3f} | "
              f"{verdict(row['meta'], TARGET_META_PROBE_S)} |")
    print(f"\nfinished {time.strftime('%Y-%m-%d %H:%M:%S')}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
