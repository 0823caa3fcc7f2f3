"""The arithmetic a run trains in: mixed precision where it pays, measured rather than assumed on the CPU.

On CUDA the choice is a property of the card (bf16 where supported, else fp16 with a scaler). On a CPU that
computes bf16 natively (AVX512-BF16, AMX) it depends on the model: measured on a 2-core AMD EPYC
(``bench/cpu_precision.py``), bf16 autocast makes a ConvNeXt-T training step 2.4x faster and a yolov5n one 1.4x,
but a MobileNetV3-S one 0.75x and an EfficientNet-B1 one 0.92x (oneDNN's depthwise convolutions are slower in
bf16). So the first run of a model on such a CPU times one step each way and keeps bf16 only when it is clearly
faster; the answer is remembered in the yoloswap home, keyed on the model, batch, size, CPU and library, so later
runs train in the same arithmetic without measuring again (a resumed run follows its checkpoint).
"""

from __future__ import annotations

import contextlib
import platform
import time
from pathlib import Path

import torch

from yoloswap.home import read_remembered, remember, remembered_path

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
# bf16 is kept only when a step takes at most this share of fp32's: it costs precision, so a tie (or a 5% gain
# that two timed steps on a busy CPU cannot tell from noise) goes to fp32
BF16_MIN_GAIN = 0.9


def autocast_for(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision on CUDA (``dtype`` bf16/fp16) or the CPU (bf16); a no-op for ``dtype`` None."""
    if device.type in ("cuda", "cpu") and dtype is not None:
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def precision_name(dtype: torch.dtype | None) -> str:
    """``bf16``, ``fp16`` or ``fp32``: how config.yaml and the logs name a run's arithmetic."""
    return next(name for name, d in DTYPES.items() if d == dtype)


def amp_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The mixed-precision dtype ``device`` offers: bf16 where the GPU supports it (no scaler needed), else fp16;
    bf16 on a CPU with native bf16 arithmetic (whether it is faster for a given model: :func:`cpu_precision`);
    ``None`` (fp32) on other CPUs, where emulated bf16 is slower, and with ``--no-amp``."""
    if not enabled:
        return None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions and matrix products natively on this CPU."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def cpu_precision(model: torch.nn.Module, describe: dict, batch: int, size: int, log=print) -> torch.dtype | None:
    """bf16 (when a step is clearly faster in it, :data:`BF16_MIN_GAIN`) or fp32 (``None``) for training ``model`` on
    this CPU; measured once per ``describe`` (what makes the model the model: preset spec, plan), batch and size,
    then read back."""
    key = {"model": describe, "batch": batch, "size": size, "cpu": cpu_model(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "v": 3}  # v2, v3: depthwise backward changed (models/depthwise.py)
    path = remembered_path("cpu-precision", key)
    known = read_remembered(path)
    if known is not None and known.get("dtype") in DTYPES:
        return DTYPES[known["dtype"]]
    device = torch.device("cpu")
    fp32_s = seconds_per_step(model, batch, size, device, None, timed=2)
    bf16_s = seconds_per_step(model, batch, size, device, torch.bfloat16, timed=2)
    chosen = "bf16" if bf16_s < BF16_MIN_GAIN * fp32_s else "fp32"
    log(f"precision: {'bf16 autocast' if chosen == 'bf16' else 'fp32'} (a training step took {bf16_s:.2f} s in bf16, "
        f"{fp32_s:.2f} s in fp32 on this CPU; remembered in {path.parent})")
    remember(path, {"dtype": chosen, "bf16_s": bf16_s, "fp32_s": fp32_s, "key": key})
    return DTYPES[chosen]


def seconds_per_step(model: torch.nn.Module, batch: int, size: int, device: torch.device, amp_dtype,
                     timed: int = 1) -> float:
    """Forward + backward time of one batch of noise (the fastest of ``timed`` steps after a warm-up step); the
    model's weights and BatchNorm statistics are left exactly as they were."""
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    was_training = model.training
    model.train()
    elapsed = float("inf")
    # the random numbers drawn here (the noise, dropout, drop path) must not shift the run's seeded stream: a run
    # that measures and one that reads the measurement back train identically
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
        for step in range(1 + timed):
            start = time.perf_counter()
            with autocast_for(device, amp_dtype):
                outputs = model(x)
            sum(o.float().mean() for o in outputs).backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step:
                elapsed = min(elapsed, time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    model.load_state_dict(buffers, strict=False)
    model.train(was_training)
    return elapsed


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for keys and reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
