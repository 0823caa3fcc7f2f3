"""Latency before and after re-parameterisation (deploy/reparam.py): PyTorch eager, ONNX Runtime and OpenVINO
(the ONNX file compiled for the CPU), at 640 px.

Each backbone becomes an untrained 80-class detector under the YOLOv5 neck and head (latency does not depend on
the weights). Both forms are exported to ONNX, then timed interleaved (before, after, before, ...) on one pinned
thread, so machine load shared by other processes hits both alike. Prints a Markdown table.

    python bench/reparam_latency.py [--iters 10] [--img-size 640] BACKBONE...
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
import torch

from yoloswap.assembly import build_detector
from yoloswap.backbones.resolve import resolve_backbone
from yoloswap.deploy.export import ExportSpec, export_model
from yoloswap.deploy.reparam import reparameterized
from yoloswap.models.complexity import count_gflops, count_params


def run(m: torch.nn.Module, x: torch.Tensor):
    """One forward as deployed: the detector's decoded rows, or the backbone's feature maps."""
    return m.infer(x) if hasattr(m, "infer") else m(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backbones", nargs="+")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--img-size", type=int, default=640)
    parser.add_argument("--part", choices=("detector", "backbone"), default="detector",
                        help="time the whole detector (the export users deploy) or its backbone alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = args.img_size
    x = torch.rand(1, 3, size, size)
    print(f"# {args.part}, {size} px, batch 1, 1 thread, median of {args.iters} interleaved calls; load {os.getloadavg()}")
    print("| backbone | params M (train → fused) | GFLOPs (train → fused) | PyTorch ms (train → fused) | "
          "ONNX Runtime ms (train → fused) | ORT speed-up | OpenVINO ms (train → fused) | OpenVINO speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    core = ov.Core()
    for name in args.backbones:
        model, _ = build_detector(resolve_backbone(name), 80, (size, size))
        forms = {"train": model.eval(), "fused": reparameterized(model)}
        if args.part == "backbone":
            forms = {form: m.backbone for form, m in forms.items()}
        sessions, compiled, stats = {}, {}, {}
        tmp = Path(tempfile.mkdtemp())
        for form, m in forms.items():
            path = tmp / f"{form}.onnx"
            if args.part == "backbone":
                torch.onnx.export(m, (x,), str(path), opset_version=17, dynamo=False)
            else:
                export_model(m, [f"c{i}" for i in range(80)], name, "onnx", ExportSpec(img_size=size), path)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
            sessions[form] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            compiled[form] = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": 1,
                                                                   "PERFORMANCE_HINT": "LATENCY"})
            with torch.no_grad():
                stats[form] = (count_params(m) / 1e6, count_gflops(m, x, call=lambda t, m=m: run(m, t)))
        feed_array = x.numpy().astype(np.float32)
        feed = {sessions["train"].get_inputs()[0].name: feed_array}
        times = {(kind, form): [] for kind in ("torch", "ort", "ov") for form in forms}
        for i in range(args.iters + 2):  # two warm-up rounds
            for form, m in forms.items():
                t0 = time.perf_counter()
                with torch.no_grad():
                    run(m, x)
                t1 = time.perf_counter()
                sessions[form].run(None, feed)
                t2 = time.perf_counter()
                compiled[form](feed_array)
                t3 = time.perf_counter()
                if i >= 2:
                    times["torch", form].append((t1 - t0) * 1e3)
                    times["ort", form].append((t2 - t1) * 1e3)
                    times["ov", form].append((t3 - t2) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| `{name}` | {stats['train'][0]:.2f} → {stats['fused'][0]:.2f} | {stats['train'][1]:.1f} → "
              f"{stats['fused'][1]:.1f} | {med['torch', 'train']:.0f} → {med['torch', 'fused']:.0f} | "
              f"{med['ort', 'train']:.0f} → {med['ort', 'fused']:.0f} | "
              f"{med['ort', 'train'] / med['ort', 'fused']:.2f}× | {med['ov', 'train']:.0f} → {med['ov', 'fused']:.0f} | "
              f"{med['ov', 'train'] / med['ov', 'fused']:.2f}× |", flush=True)
    print(f"# load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
