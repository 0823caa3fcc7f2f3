"""CPU training keeps the memory a step frees, so the next step's tensors reuse it instead of faulting in fresh
pages, and gives it back when training returns. Each case runs in its own interpreter: glibc's settings are
process-wide."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                                reason="the settings are glibc's")

SCRIPT = """
import resource, sys, torch
from yoloswap.training import cpu_memory

torch.set_num_threads(1)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20

if sys.argv[1] == "keep":
    assert cpu_memory.keep_freed_memory()
net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 16, 3, padding=1))
def step():  # activations and gradients of 20 to 40 MiB: above glibc's largest mmap threshold (32 MiB) in part
    x = torch.randn(16, 16, 144, 144, requires_grad=True)
    net(x).square().mean().backward()
for _ in range(3):  # warm up: the heap settles to the steps' sizes
    step()
before = faults()
for _ in range(2):
    step()
print((faults() - before) // 2, end=" ")
held = rss_mib()
cpu_memory.give_back_memory()
print(round(held - rss_mib()))
"""


def _run(mode: str, script: str = SCRIPT) -> tuple[int, ...]:
    out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True).stdout
    return tuple(int(v) for v in out.split())


def test_a_step_reuses_the_memory_the_last_step_freed_and_training_gives_it_back_at_the_end():
    default_faults, _ = _run("default")
    if default_faults < 4096:
        pytest.skip(f"{default_faults} page faults a step with glibc's defaults here (huge pages?): nothing to save")
    kept_faults, given_back_mib = _run("keep")
    assert kept_faults < default_faults // 5, (kept_faults, default_faults)  # 0 against ~20,000 here
    assert given_back_mib >= 32  # the steps' freed activations leave the process when training returns


LATER = """
import resource, sys, torch
from yoloswap.training import cpu_memory

torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 16, 3, padding=1))
def work():  # blocks of 2 to 4 MiB, under glibc's adaptive mmap ceiling
    x = torch.randn(8, 16, 64, 64, requires_grad=True)
    net(x).square().mean().backward()
for _ in range(3):
    work()
if sys.argv[1] == "trained":  # a training in between, as yoloswap.train runs one in a Python session
    cpu_memory.keep_freed_memory()
    work()
    cpu_memory.give_back_memory()
for _ in range(3):
    work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    work()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 10)
"""


def test_a_process_that_trained_allocates_no_worse_afterwards_than_one_that_never_did():
    """glibc stops adapting its thresholds once one is set; giving memory back must not leave it at its 128 KiB
    start (a trim threshold that small faults every later step's blocks in again: 2.3x a fresh process's faults)."""
    (fresh,), (trained,) = _run("fresh", LATER), _run("trained", LATER)
    assert trained <= 1.2 * fresh + 256, (trained, fresh)


@pytest.mark.slow
def test_cpu_training_keeps_freed_memory_while_it_steps_and_gives_it_back_when_it_returns(tmp_path, monkeypatch):
    from tests.make_data import ultralytics_set
    from tests.test_loop_train import quiet, tiny_options
    from yoloswap.training import cpu_memory
    from yoloswap.training import loop as trainer

    events = []
    monkeypatch.setattr(cpu_memory, "keep_freed_memory", lambda: events.append("keep"))
    monkeypatch.setattr(cpu_memory, "give_back_memory", lambda: events.append("give back"))
    real_step = trainer.train_one_epoch
    monkeypatch.setattr(trainer, "train_one_epoch", lambda *a, **k: (events.append("epoch"), real_step(*a, **k))[1])
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    trainer.train(tiny_options(data), out=tmp_path / "run", console=quiet())
    assert events == ["keep", "epoch", "give back"]
