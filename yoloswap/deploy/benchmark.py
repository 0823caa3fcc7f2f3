"""Inference speed of a detector in each runtime: latency median and p90 after warm-up, throughput, size.

Latency is one ``infer`` call on a batch of letterbox-grey images (model work only: no decoding of files, no
NMS, which depends on how many boxes a trained model emits). CUDA timings synchronise before reading the clock.
The ONNX Runtime figure runs the exact file ``yoloswap export`` writes (exported into a temporary folder).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

DEFAULT_WARMUP = 5
DEFAULT_ITERS = 30


@dataclass(frozen=True)
class Timing:
    runtime: str  # pytorch | onnxruntime | openvino
    device: str  # cpu | cuda (ONNX Runtime: the provider it actually used)
    img_size: int
    batch: int
    median_ms: float
    p90_ms: float
    images_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def time_calls(fn: Callable[[], object], warmup: int, iters: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Milliseconds of ``iters`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def summarise(runtime: str, device: str, img_size: int, batch: int, times_ms: list[float]) -> Timing:
    ordered = sorted(times_ms)
    median = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return Timing(runtime, device, img_size, batch, round(median, 3), round(p90, 3), round(batch * 1000 / median, 2))


def _images(batch: int, img_size: int, device: torch.device) -> torch.Tensor:
    return torch.full((batch, 3, img_size, img_size), 114 / 255, device=device)  # letterbox grey, in [0, 1]


def bench_pytorch(model: torch.nn.Module, img_size: int, batch: int, device: torch.device,
                  warmup: int = DEFAULT_WARMUP, iters: int = DEFAULT_ITERS) -> Timing:
    model = model.eval().to(device)
    x = _images(batch, img_size, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        times = time_calls(lambda: model.infer(x), warmup, iters, sync)
    return summarise("pytorch", device.type, img_size, batch, times)


def bench_runtime(runtime, img_size: int, batch: int, warmup: int = DEFAULT_WARMUP,
                  iters: int = DEFAULT_ITERS) -> Timing:
    """Any runtime (deploy/runtimes.py); ONNX Runtime reports the provider it ran on."""
    x = _images(batch, img_size, torch.device("cpu"))
    times = time_calls(lambda: runtime.infer(x), warmup, iters)
    providers = getattr(runtime, "providers", None) or ["CPUExecutionProvider"]
    device = "cuda" if providers[0] == "CUDAExecutionProvider" else "cpu"
    return summarise(runtime.kind, device, img_size, batch, times)


def bench_exported(fmt: str, model: torch.nn.Module, names: list[str], backbone: str, img_size: int, batch: int,
                   device: torch.device, warmup: int = DEFAULT_WARMUP, iters: int = DEFAULT_ITERS) -> Timing:
    """Export ``model`` as ``fmt`` (onnx | openvino; static shape, fp32) in a temporary folder and time the file
    in its runtime, exactly as ``yoloswap export`` writes it."""
    from yoloswap.deploy.export import FORMATS, ExportSpec, export_model
    from yoloswap.deploy.runtimes import load_runtime

    with tempfile.TemporaryDirectory() as folder:
        path = export_model(model, names, backbone, fmt, ExportSpec(img_size=img_size, batch=batch),
                            Path(folder) / f"model{FORMATS[fmt][0]}", device="cpu")
        runtime = load_runtime(path, device)
        return bench_runtime(runtime, img_size, batch, warmup, iters)


def bench_onnx(model: torch.nn.Module, names: list[str], backbone: str, img_size: int, batch: int,
               device: torch.device, warmup: int = DEFAULT_WARMUP, iters: int = DEFAULT_ITERS) -> Timing:
    return bench_exported("onnx", model, names, backbone, img_size, batch, device, warmup, iters)


def model_size(model: torch.nn.Module, img_size: int) -> dict:
    """Parameters (millions) and GFLOPs of one image at ``img_size``."""
    from yoloswap.models.complexity import count_gflops, count_params

    device = next(model.parameters()).device
    x = torch.zeros(1, 3, img_size, img_size, device=device)
    return {"params_m": round(count_params(model) / 1e6, 3), "gflops": round(count_gflops(model, x), 3)}


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in ("onnx", "onnxruntime"))


def openvino_available() -> bool:
    from yoloswap.deploy.openvino import openvino_available as available

    return available()


# runtime name -> (the export format it runs, is its extra installed, what to install)
EXPORTED = {
    "onnxruntime": ("onnx", onnx_available, 'pip install "yoloswap[export]"'),
    "openvino": ("openvino", openvino_available, 'pip install "yoloswap[openvino]"'),
}
RUNTIME_NAMES = ("pytorch", *EXPORTED)


def benchmark_detector(model: torch.nn.Module, names: list[str], backbone: str, img_size: int, batch: int,
                       device: torch.device, runtimes: tuple[str, ...] = ("pytorch", "onnxruntime"),
                       warmup: int = DEFAULT_WARMUP, iters: int = DEFAULT_ITERS) -> dict:
    """Size and one Timing per runtime; an exported runtime whose extra is missing is skipped with a note."""
    report = {"backbone": backbone, **model_size(model.to(device), img_size), "timings": [], "notes": []}
    for runtime in runtimes:
        if runtime == "pytorch":
            report["timings"].append(bench_pytorch(model, img_size, batch, device, warmup, iters).to_dict())
            continue
        fmt, available, hint = EXPORTED[runtime]
        if not available():
            report["notes"].append(f"{runtime} skipped: {hint}")
            continue
        report["timings"].append(
            bench_exported(fmt, model.cpu(), names, backbone, img_size, batch, device, warmup, iters).to_dict())
        model.to(device)
    return report
