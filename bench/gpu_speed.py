"""GPU training speed in one command: model only per preset, the loader alone, end to end, and Ultralytics beside it.

Issue 9 asks whether the GPU is fed: yoloswap end to end should reach 90% of the model's own speed and 1.3× the
speed of Ultralytics' `yolov5s.yaml` trained end to end on the same images. One run measures, at ``--img-size``
(640) and ``--batch-size`` (64), on generated images (the built-in synthetic set, ``--unique`` rendered images
linked ``--images`` times over, in Ultralytics layout, with a small val split):

1. **model only**, every preset (``--presets``): forward + YOLOv5 loss + backward + optimizer step + EMA update on a
   resident batch, built as the trainer builds it (preset optimizer, freezing, channels_last, bf16 autocast where
   the GPU has it), with ``cudnn.benchmark`` on: the ceiling the trainer aims at. Peak memory is reported.
2. **loader only**: the training DataLoader (``--workers`` processes, mosaic on, pinned memory on CUDA); the
   second epoch is timed, as persistent workers serve it in training. Also one process (``workers=0``).
3. **end to end**: the real ``yoloswap train`` in a subprocess for ``--epochs`` epochs (``--close-mosaic 0``,
   ``--weights none``) for yolov5s and convnext-tiny (``--e2e-presets``); img/s from its metrics.csv, the loop's
   own figure (``train/img_per_s``) and with validation (train images / ``time/epoch_s``), median over the epochs
   after the first.
4. **Ultralytics** ``yolov5s.yaml`` end to end on the same data YAML, batch, epochs and workers, in a subprocess
   with its own defaults otherwise (fp16 AMP, deterministic=True); per-epoch times from its callbacks, training
   loop alone and with validation, same rule as 3. Its AMP check, which downloads weights, is skipped (AMP on).

Prints a table and writes ``--json`` (default: gpu_speed.json under ``--root``). ``--quick`` shrinks everything for a check of the
script itself on a CPU (``--device cpu --quick``).

On the GPU machine (no network, no yoloswap, no Ultralytics installed): run ``bash bench/gpu_prepare.sh`` here
first, which puts wheels in bench/wheels/, then there::

    pip install -q --no-index --no-deps --target /tmp/site bench/wheels/*.whl
    PYTHONPATH=/tmp/site python bench/gpu_speed.py

A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ALL_PRESETS = ("yolov5s", "yolov5n", "yolov5m", "yolov5l", "mobilenetv3-small", "efficientnet-b1", "resnet50",
               "mocov3-resnet50", "convnext-tiny", "swin-tiny")  # fmt: skip


# ----------------------------------------------------------------------------------------------- data


def make_data(root: Path, images: int, unique: int, src_size: int, val: int) -> Path:
    """``images`` training files (``unique`` rendered ones, hard-linked over and over) and ``val`` val images,
    with a data YAML whose ``path`` is absolute (Ultralytics resolves a relative one under its own folder)."""
    from yoloswap.data.synthetic import CLASS_NAMES, write_demo_data

    source = write_demo_data(root / f"source-{unique}x{src_size}", num_train=unique, num_val=val, img_size=src_size)
    data = root / f"data-{images}x{src_size}"
    if not (data / "data.yaml").exists():
        shutil.rmtree(data, ignore_errors=True)
        for split, count in (("train", images), ("val", val)):
            for kind, ext in (("images", ".jpg"), ("labels", ".txt")):
                (data / kind / split).mkdir(parents=True)
                for i in range(count):
                    src = source.parent / kind / split / f"{i % (unique if split == 'train' else val):06d}{ext}"
                    os.link(src, data / kind / split / f"{i:06d}{ext}")
        names = ", ".join(CLASS_NAMES)
        (data / "data.yaml").write_text(f"path: {data}\ntrain: images/train\nval: images/val\nnames: [{names}]\n")
    return data / "data.yaml"


# ----------------------------------------------------------------------------------------------- model only


def model_only(name: str, args: argparse.Namespace, device) -> dict:
    """Images/s of the trainer's step on a resident batch, and the peak memory it needed."""
    import torch

    from model_speed import random_targets  # bench/model_speed.py
    from yoloswap.backbones.freeze import apply_freezing
    from yoloswap.training.ema import ModelEMA
    from yoloswap.training.optim import build_optimizer
    from yoloswap.training.precision import amp_dtype_for
    from yoloswap.training.precision import autocast_for
    from yoloswap.assembly import build_detector
    from yoloswap.backbones.resolve import resolve_backbone

    size, batch, nc = args.img_size, args.batch_size, 6
    preset = resolve_backbone(name)
    model, _ = build_detector(preset, nc, (size, size))
    apply_freezing(model.backbone, preset.frozen_stages, preset.norm_eval)
    model.to(device, memory_format=torch.channels_last).train()
    opt = preset.optimizer
    optimizer = build_optimizer(model, opt.name, opt.lr, opt.momentum, opt.weight_decay)
    ema = ModelEMA(model)
    loss_fn = model.head.make_loss(size)  # the head owns its loss (yolov5 or yolov8)
    amp = amp_dtype_for(device, True)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen).to(device)
    targets = random_targets(batch, size, nc, gen).to(device)
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def step() -> None:
        x = (images.float() / 255).contiguous(memory_format=torch.channels_last)
        with autocast_for(device, amp):
            outputs = model(x)
        loss, _ = loss_fn([o.float() for o in outputs], targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm=10.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(model)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    sync()
    iters, start = 0, time.perf_counter()
    while iters < args.min_iters or (time.perf_counter() - start < args.seconds and iters < args.max_iters):
        step()
        iters += 1
        if iters == args.min_iters:
            sync()
    sync()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    del model, optimizer, ema, images
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"img_per_s": iters * batch / elapsed, "iters": iters, "peak_gib": peak}


# ----------------------------------------------------------------------------------------------- loader only


def loader_only(data_yaml: Path, workers: int, args: argparse.Namespace) -> dict:
    """Images/s of the training DataLoader: the second epoch with workers, ``--loader-batches`` batches without."""
    from yoloswap.data.dataset import DetectionDataset, build_dataloader
    from yoloswap.data.formats import load_data_config

    ds = DetectionDataset(load_data_config(data_yaml).train.samples, args.img_size, augment=True, seed=0)
    loader = build_dataloader(ds, args.batch_size, True, workers, 0, drop_last=True)
    if workers == 0:
        it = iter(loader)
        next(it)
        start = time.perf_counter()
        n = sum(len(next(it)[0]) for _ in range(min(args.loader_batches, len(loader) - 1)))
        return {"img_per_s": n / (time.perf_counter() - start), "workers": 0}
    for _ in loader:  # first epoch: starts the persistent workers
        pass
    start, n = time.perf_counter(), 0
    for images, _, _ in loader:
        n += len(images)
    result = {"img_per_s": n / (time.perf_counter() - start), "workers": workers}
    del loader
    return result


# ----------------------------------------------------------------------------------------------- end to end


def after_first(values: list[float]) -> float:
    """Median of the epochs after the first (worker start-up, cudnn autotuning), or the only one."""
    return statistics.median(values[1:] if len(values) > 1 else values)


def yoloswap_e2e(preset: str, data_yaml: Path, out: Path, args: argparse.Namespace) -> dict:
    """``yoloswap train`` in a subprocess; img/s read back from its metrics.csv."""
    cmd = [sys.executable, "-m", "yoloswap", "train", "--backbone", preset, "--data", str(data_yaml),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--img-size", str(args.img_size),
           "--workers", str(args.workers), "--device", args.device, "--out", str(out), "--exist-ok",
           "--close-mosaic", "0", "--weights", "none"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout)[-2000:], "wall_s": wall}
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    n_train = args.images
    loop = [float(r["train/img_per_s"]) for r in rows]
    with_val = [n_train / float(r["time/epoch_s"]) for r in rows]
    return {"img_per_s": after_first(loop), "img_per_s_with_val": after_first(with_val), "epochs": len(rows),
            "per_epoch_img_per_s": loop, "wall_s": wall}


def ultralytics_e2e(data_yaml: Path, out: Path, args: argparse.Namespace) -> dict:
    """Ultralytics ``yolov5s.yaml`` trained in a subprocess (this file, ``--child ultralytics``)."""
    cmd = [sys.executable, __file__, "--child", "ultralytics", "--data", str(data_yaml), "--out", str(out),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--img-size", str(args.img_size),
           "--workers", str(args.workers), "--device", args.device]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or done.stdout)[-2000:], "wall_s": wall}
    marks = json.loads(lines[-1])
    n = marks["train_images"]
    loop = [n / (m["train_end"] - m["start"]) for m in marks["epochs"]]
    with_val = [n / (m["end"] - m["start"]) for m in marks["epochs"]]
    return {"img_per_s": after_first(loop), "img_per_s_with_val": after_first(with_val), "epochs": len(loop),
            "per_epoch_img_per_s": loop, "wall_s": wall, "version": marks["version"]}


def ultralytics_child(args: argparse.Namespace) -> None:
    """Runs inside the subprocess: train Ultralytics offline, print its epoch timestamps as one JSON line."""
    sys.path.insert(0, str(BENCH))
    from ultralytics_side import prepare_offline

    prepare_offline(args.out / "config")
    import ultralytics
    import ultralytics.engine.trainer as ultra_trainer
    from ultralytics import YOLO

    ultra_trainer.check_amp = lambda model: True  # the check downloads yolo26n.pt; offline it would only warn
    epochs: list[dict] = []
    info: dict = {}

    def on_train_epoch_start(trainer) -> None:
        epochs.append({"start": time.perf_counter()})

    def on_train_epoch_end(trainer) -> None:
        epochs[-1]["train_end"] = time.perf_counter()

    def on_fit_epoch_end(trainer) -> None:
        epochs[-1]["end"] = time.perf_counter()
        info["train_images"] = len(trainer.train_loader.dataset)

    model = YOLO("yolov5s.yaml")
    for event, fn in (("on_train_epoch_start", on_train_epoch_start), ("on_train_epoch_end", on_train_epoch_end),
                      ("on_fit_epoch_end", on_fit_epoch_end)):  # fmt: skip
        model.add_callback(event, fn)
    device = 0 if args.device.startswith("cuda") else "cpu"
    model.train(data=str(args.data), epochs=args.epochs, imgsz=args.img_size, batch=args.batch_size,
                workers=args.workers, device=device, amp=device != "cpu", plots=False, val=True, close_mosaic=0,
                pretrained=False, project=str(args.out), name="run", exist_ok=True, seed=0, verbose=False)  # fmt: skip
    print(json.dumps({"epochs": epochs, "version": ultralytics.__version__, **info}))


# ----------------------------------------------------------------------------------------------- report


def ratio(a: dict | None, b: dict | None, key_a: str = "img_per_s", key_b: str = "img_per_s") -> float | None:
    if not a or not b or key_a not in a or key_b not in b:
        return None
    return a[key_a] / b[key_b]


def fmt(x, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def print_report(res: dict) -> None:
    print(f"\n## GPU speed (bench/gpu_speed.py) on {res['device_name']}\n")
    print(f"- {res['settings']}")
    print("\n| model only (fwd + loss + bwd + step + EMA) | img/s | peak GiB |\n|---|---:|---:|")
    for name, r in res["model_only"].items():
        print(f"| {name} | {fmt(r.get('img_per_s'))} | {fmt(r.get('peak_gib'))} |" if "error" not in r
              else f"| {name} | error: {r['error'][-120:]!r} | |")  # fmt: skip
    print("\n| loader only | img/s |\n|---|---:|")
    for key, r in res["loader"].items():
        print(f"| training DataLoader, {key} | {fmt(r.get('img_per_s'))} |")
    print("\n| end to end | img/s (training loop) | img/s with validation | epochs | wall s |\n|---|---:|---:|---:|---:|")
    for name, r in res["end_to_end"].items():
        if "error" in r:
            print(f"| {name} | error: {r['error'][-200:]!r} | | | |")
        else:
            print(f"| {name} | {fmt(r['img_per_s'])} | {fmt(r['img_per_s_with_val'])} | {r['epochs']} | "
                  f"{r['wall_s']:.0f} |")
    print("\n| ratio | value | target |\n|---|---:|---|")
    for name, (value, target) in res["ratios"].items():
        print(f"| {name} | {fmt(value, '.2f')} | {target} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--img-size", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=2048, help="training images (hard links to --unique ones)")
    parser.add_argument("--unique", type=int, default=256, help="distinct rendered training images")
    parser.add_argument("--val", type=int, default=64, help="validation images")
    parser.add_argument("--src-size", type=int, default=640, help="side of the generated images")
    parser.add_argument("--workers", type=int, default=min(14, max((os.cpu_count() or 2) - 2, 1)))
    parser.add_argument("--epochs", type=int, default=3, help="end-to-end epochs (the first is not counted)")
    parser.add_argument("--presets", nargs="*", default=list(ALL_PRESETS), help="model-only presets")
    parser.add_argument("--e2e-presets", nargs="*", default=["yolov5s", "convnext-tiny"])
    parser.add_argument("--warmup", type=int, default=3, help="model only: untimed steps")
    parser.add_argument("--min-iters", type=int, default=5, help="model only: timed steps at least")
    parser.add_argument("--max-iters", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=3.0, help="model only: time each preset this long")
    parser.add_argument("--loader-batches", type=int, default=4, help="loader in one process: timed batches")
    parser.add_argument("--no-ultralytics", action="store_true")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "yoloswap-gpu-speed")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures (default: under --root)")
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks the script, measures nothing")
    parser.add_argument("--child", choices=["ultralytics"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        ultralytics_child(args)
        return
    if args.quick:
        args.img_size, args.batch_size, args.images, args.unique, args.val = 128, 4, 16, 8, 4
        args.workers, args.epochs, args.presets, args.e2e_presets = 2, 2, ["yolov5n"], ["yolov5n"]
        args.warmup, args.min_iters, args.max_iters, args.seconds, args.loader_batches = 1, 1, 2, 0.0, 2

    sys.path.insert(0, str(BENCH))
    import torch

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("no CUDA device here; pass --device cpu (with --quick) to check the script on a CPU")
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    data_yaml = make_data(args.root, args.images, args.unique, args.src_size, args.val)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    res: dict = {
        "device_name": device_name,
        "settings": (f"{args.img_size} px, batch {args.batch_size}, {args.images} training images ({args.unique} "
                     f"distinct, {args.src_size} px JPEG), {args.val} val, {args.workers} workers, {args.epochs} "
                     f"epochs end to end; torch {torch.__version__}, python {platform.python_version()}, "
                     f"{os.cpu_count()} CPUs"),
        "model_only": {}, "loader": {}, "end_to_end": {},
    }  # fmt: skip

    # the loader first: its workers fork from a process that has not touched CUDA yet
    for workers in sorted({args.workers, 0}, reverse=True):
        res["loader"][f"{workers} workers" if workers else "1 process"] = loader_only(data_yaml, workers, args)
        print(f"loader, {workers} workers: {res['loader'][list(res['loader'])[-1]]['img_per_s']:.1f} img/s",
              flush=True)  # fmt: skip
    for name in args.presets:
        try:
            res["model_only"][name] = model_only(name, args, device)
        except Exception as e:  # an out-of-memory preset must not lose the other figures
            res["model_only"][name] = {"error": f"{type(e).__name__}: {e}"}
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(f"model only, {name}: {fmt(res['model_only'][name].get('img_per_s'))} img/s", flush=True)
    runs = args.root / "runs"
    for preset in args.e2e_presets:
        res["end_to_end"][f"yoloswap {preset}"] = yoloswap_e2e(preset, data_yaml, runs / preset, args)
        print(f"end to end, yoloswap {preset}: {fmt(res['end_to_end'][f'yoloswap {preset}'].get('img_per_s'))}",
              flush=True)  # fmt: skip
    if not args.no_ultralytics:
        res["end_to_end"]["ultralytics yolov5s.yaml"] = ultralytics_e2e(data_yaml, runs / "ultralytics", args)
        print(f"end to end, Ultralytics: {fmt(res['end_to_end']['ultralytics yolov5s.yaml'].get('img_per_s'))}",
              flush=True)  # fmt: skip

    e2e, mo = res["end_to_end"], res["model_only"]
    ys, ul = e2e.get("yoloswap yolov5s"), e2e.get("ultralytics yolov5s.yaml")
    res["ratios"] = {
        "yolov5s end to end / model only": (ratio(ys, mo.get("yolov5s")), ">= 0.90"),
        "convnext-tiny end to end / model only": (ratio(e2e.get("yoloswap convnext-tiny"), mo.get("convnext-tiny")),
                                                  ">= 0.90"),
        "yolov5s end to end / Ultralytics (training loops)": (ratio(ys, ul), ">= 1.3"),
        "yolov5s end to end / Ultralytics (with validation)": (ratio(ys, ul, "img_per_s_with_val",
                                                                     "img_per_s_with_val"), ">= 1.3"),
        "loader ({} workers) / yolov5s model only".format(args.workers): (
            ratio(res["loader"].get(f"{args.workers} workers"), mo.get("yolov5s")), "> 1 (the loader keeps up)"),
    }  # fmt: skip
    res["total_s"] = time.perf_counter() - started
    print_report(res)
    json_path = args.json or args.root / "gpu_speed.json"
    json_path.write_text(json.dumps(res, indent=1, default=str))
    print(f"\ntotal {res['total_s']:.0f} s; figures in {json_path}")


if __name__ == "__main__":
    main()
