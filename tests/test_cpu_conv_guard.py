"""Training on the CPU never hands oneDNN a strided 1x1 convolution with under 16 input channels in channels_last
memory (uxlfoundation/oneDNN#6035: its weight gradient writes past its workspace and kills the process).

Everything that could hit the native crash runs in a subprocess, so a regression fails one test instead of taking
the whole suite down.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.make_data import ultralytics_set
from yoloswap.training.cpu_conv_guard import guard_cpu_convolutions, needs_guard

ROOT = Path(__file__).resolve().parents[1]
NATIVE_CRASH = "exit code {rc}: a native crash (segmentation fault or heap corruption)"

# The upstream reproducer: a dense 1x1 stride-2 convolution of 3 channels, channels_last, mean().backward().
REPRODUCER = """
import torch
from torch import nn
conv = nn.Conv2d(3, 48, 1, stride=2).to(memory_format=torch.channels_last)
x = torch.rand(8, 3, 128, 128).contiguous(memory_format=torch.channels_last)
conv(x).mean().backward()
"""


def _python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def test_the_installed_torch_is_checked_for_the_onednn_bug_in_a_subprocess():
    """Reports (as xfail) whether this torch still has the bug; the guard below is what keeps training alive."""
    proc = _python(REPRODUCER)
    if proc.returncode != 0:
        pytest.xfail(f"torch {torch.__version__} still has uxlfoundation/oneDNN#6035: the reproducer died with "
                     + NATIVE_CRASH.format(rc=proc.returncode))
    assert proc.returncode == 0  # fixed upstream: the guard is harmless, and could go


@pytest.mark.parametrize("conv, guarded", [
    (nn.Conv2d(3, 48, 1, stride=2), True),
    (nn.Conv2d(13, 32, 1, stride=(2, 1)), True),  # GENet-S's shortcut has 13 channels
    (nn.Conv2d(16, 48, 1, stride=2), False),  # from 16 channels on the kernel is sound
    (nn.Conv2d(3, 48, 1, stride=1), False),
    (nn.Conv2d(3, 48, 3, stride=2), False),
    (nn.Conv2d(8, 8, 1, stride=2, groups=8), False),  # depthwise
    (nn.ConvTranspose2d(3, 48, 1, stride=2), False),
])
def test_only_dense_strided_1x1_convolutions_of_few_channels_are_guarded(conv, guarded):
    assert needs_guard(conv) is guarded


def test_the_guard_leaves_names_and_checkpoints_alone_and_is_applied_once():
    model = nn.Sequential(nn.Conv2d(3, 16, 1, stride=2), nn.ReLU(), nn.Conv2d(16, 8, 1, stride=2))
    keys = list(model.state_dict())
    assert guard_cpu_convolutions(model) == ["0"]
    assert guard_cpu_convolutions(model) == ["0"]
    assert len(model[0]._forward_pre_hooks) == 1 and len(model[0]._forward_hooks) == 1
    assert list(model.state_dict()) == keys
    ema = copy.deepcopy(model)  # the EMA copy keeps the guard
    assert len(ema[0]._forward_pre_hooks) == 1


def test_a_guarded_convolution_keeps_the_layout_of_its_input_for_the_next_layer():
    conv = nn.Conv2d(3, 48, 1, stride=2).to(memory_format=torch.channels_last)
    guard_cpu_convolutions(conv)
    with torch.no_grad():
        out = conv(torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last))
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert conv(torch.rand(2, 3, 32, 32)).is_contiguous()


def test_the_guarded_convolution_trains_in_channels_last_with_the_gradients_of_nchw():
    proc = _python("""
        import copy, json
        import torch
        from torch import nn
        from yoloswap.training.cpu_conv_guard import guard_cpu_convolutions
        torch.manual_seed(0)
        reference = nn.Conv2d(3, 48, 1, stride=2)  # NCHW: a kernel without the bug
        conv = copy.deepcopy(reference).to(memory_format=torch.channels_last)
        guard_cpu_convolutions(conv)
        x = torch.rand(8, 3, 128, 128)
        x_ref, x_cl = x.clone().requires_grad_(), x.contiguous(memory_format=torch.channels_last).requires_grad_()
        (conv(x_cl) ** 2).mean().backward()
        (reference(x_ref) ** 2).mean().backward()
        pairs = {"weight": (conv.weight.grad, reference.weight.grad), "bias": (conv.bias.grad, reference.bias.grad),
                 "input": (x_cl.grad, x_ref.grad)}
        print(json.dumps({k: (a - b).abs().max().item() for k, (a, b) in pairs.items()}))
    """)
    assert proc.returncode == 0, NATIVE_CRASH.format(rc=proc.returncode) + "\n" + proc.stderr[-2000:]
    differences = json.loads(proc.stdout)
    assert set(differences) == {"weight", "bias", "input"}
    assert all(d <= 1e-5 for d in differences.values()), differences


TRAIN_BOTH_PRECISIONS = """
    import dataclasses, json, sys
    from pathlib import Path
    from yoloswap.config.options import TrainOptions
    from yoloswap.data.transforms import AugmentConfig
    from yoloswap.training.loop import train

    backbone, data, out = sys.argv[1:4]
    still = AugmentConfig(hsv_h=0, hsv_s=0, hsv_v=0, translate=0, scale=0, fliplr=0, mosaic=0)  # the same batch
    losses = {}
    for amp in (False, True):  # --no-amp, then --amp (the CPU times both precisions first: a backward each)
        seen = []
        options = TrainOptions(backbone=backbone, data=data, epochs=3, img_size=64, batch_size=4, nominal_batch=4,
                               warmup_epochs=0, optimizer="adamw", lr=0.01, workers=0, device="cpu", amp=amp,
                               val_interval=100, augment=still)
        train(options, Path(out) / str(amp), callbacks=[lambda event: seen.append(event.loss)])
        losses["amp" if amp else "no-amp"] = seen
    print(json.dumps(losses))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["timm:mobileone_s0", "timm:repvgg_a0", "timm:fastvit_t8"])
def test_backbones_with_such_a_stem_train_and_learn_on_the_cpu_with_and_without_amp(backbone, tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=1)
    proc = _python(TRAIN_BOTH_PRECISIONS, backbone, str(data), str(tmp_path / "runs"), timeout=300)
    assert proc.returncode == 0, NATIVE_CRASH.format(rc=proc.returncode) + "\n" + proc.stderr[-3000:]
    assert "runs in NCHW" in proc.stderr and "oneDNN#6035" in proc.stderr  # said once in the log
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    for precision, per_epoch in losses.items():
        assert len(per_epoch) == 3, (precision, per_epoch)
        assert per_epoch[-1] < per_epoch[0], (precision, per_epoch)  # three steps on one batch: it learns


def test_a_guarded_weight_has_nchw_strides_before_the_first_step_and_after_a_move_to_channels_last():
    conv = nn.Conv2d(3, 48, 1, stride=2).to(memory_format=torch.channels_last)
    assert conv.weight.stride() == (3, 1, 3, 3)  # channels_last strides, which also count as contiguous
    guard_cpu_convolutions(conv)
    assert conv.weight.stride() == (3, 1, 1, 1)  # an optimizer or DDP built next sees the final layout
    conv.to(memory_format=torch.channels_last)
    with torch.no_grad():
        conv(torch.rand(1, 3, 8, 8))
    assert conv.weight.stride() == (3, 1, 1, 1)
