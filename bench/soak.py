"""Kill/resume soak: ``kill -9`` a CPU training run at random moments, resume it each time, and compare the result
with an uninterrupted run of the same seed.

    .venv/bin/python bench/soak.py --kills 20 --epochs 12

Kill moments: every ``--checkpoint-every``-th kill waits until a checkpoint is being written (a ``.last.pt.*.tmp``
file exists in the weights folder) and kills then; the others land at a random time after the run has finished
setting up (uniform over ``--window-epochs`` epochs as measured on the uninterrupted run; a fresh run only once its
first checkpoint exists, so that kills test resumes), so they fall in training steps, validation, plotting or the
save alike. After each kill: last.pt and best.pt must load; the run is resumed with
``--resume`` (or started again when it died before its first checkpoint). At the end, every epoch must appear
exactly once in metrics.csv, and the final weights (model and EMA) are compared with the uninterrupted run's.

Prints one JSON summary (kills survived, kills during a checkpoint write, epochs lost, weight differences).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.make_data import ultralytics_set  # noqa: E402

from yoloswap.checkpoint import load_checkpoint  # noqa: E402


def train_command(data: Path, run: Path, epochs: int, seed: int) -> list[str]:
    return [sys.executable, "-m", "yoloswap", "train", "--backbone", "yolov5n", "--data", str(data), "--epochs",
            str(epochs), "--img-size", "64", "--batch-size", "2", "--nominal-batch", "2", "--workers", "0",
            "--device", "cpu", "--seed", str(seed), "--out", str(run)]  # fmt: skip


def resume_command(run: Path) -> list[str]:
    return [sys.executable, "-m", "yoloswap", "train", "--resume", str(run), "--workers", "0", "--device", "cpu"]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=log.parent)


def wait_for_setup(proc: subprocess.Popen, log: Path, timeout_s: float = 600) -> bool:
    """Until the run has logged its setup (model and data built); False if it ended first."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if "run folder:" in log.read_text(errors="replace"):
            return True
        time.sleep(0.02)
    raise TimeoutError(f"no setup within {timeout_s}s; see {log}")


def wait_for_first_checkpoint(proc: subprocess.Popen, weights: Path) -> bool:
    """A fresh run is killed only once it has a last.pt, so that most kills test a resume, not a restart."""
    while not (weights / "last.pt").exists():
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return True


def kill_during_checkpoint(proc: subprocess.Popen, weights: Path, timeout_s: float = 600) -> bool:
    """SIGKILL the moment a checkpoint temp file exists; False if the run ended first."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if any(weights.glob(".*.pt.*.tmp")):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    raise TimeoutError("no checkpoint write seen")


def kill_after(proc: subprocess.Popen, delay_s: float) -> bool:
    try:
        proc.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def check_loadable(weights: Path) -> int | None:
    """The epoch of last.pt (None before the first save); best.pt must load too when it exists."""
    for name in ("best.pt", "last.pt"):
        if (weights / name).exists():
            load_checkpoint(weights / name)
    return int(load_checkpoint(weights / "last.pt")["epoch"]) if (weights / "last.pt").exists() else None


def metric_epochs(run: Path) -> list[int]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [int(r["epoch"]) for r in csv.DictReader(fh)]


def compare(a: dict, b: dict) -> dict:
    """Largest absolute difference over the float tensors of two state dicts, and whether all are bit-equal."""
    import torch

    worst, equal = 0.0, True
    for key, x in a.items():
        y = b[key]
        equal &= torch.equal(x, y)
        if x.is_floating_point():
            worst = max(worst, float((x - y).abs().max()) if x.numel() else 0.0)
    return {"bit_exact": bool(equal), "max_abs_diff": worst}


def soak(work: Path, kills: int, epochs: int, seed: int, checkpoint_every: int, rng: random.Random,
         window_epochs: float = 1.0) -> dict:
    data = ultralytics_set(work / "data", names_as_dict=False, n_train=4, n_val=2)
    reference = work / "reference"
    t0 = time.monotonic()
    ref_log = work / "reference.log"
    ref = start(train_command(data, reference, epochs, seed), ref_log)
    assert wait_for_setup(ref, ref_log), ref_log.read_text()
    setup_done = time.monotonic()
    assert ref.wait() == 0, ref_log.read_text()
    epoch_s = (time.monotonic() - setup_done) / epochs
    reference_s = time.monotonic() - t0

    run, weights = work / "soak", work / "soak" / "weights"
    survived, during_save, restarts, starts, resumes = 0, 0, 0, 0, 0
    lost = []  # epochs whose checkpoint existed before a kill and not after (must stay empty)
    while True:
        resumable = (weights / "last.pt").exists()
        if not resumable and run.exists():
            shutil.rmtree(run)  # died before its first checkpoint: start again, as a user would
            restarts += 1
        cmd = resume_command(run) if resumable else train_command(data, run, epochs, seed)
        log = work / f"soak-{starts}.log"
        proc = start(cmd, log)
        starts += 1
        resumes += resumable
        if survived >= kills or not wait_for_setup(proc, log):
            rc = proc.wait()
            if rc != 0:
                raise RuntimeError(f"run ended with {rc}; see {log}")
            break
        if not resumable and not wait_for_first_checkpoint(proc, weights):
            break  # (cannot happen with enough epochs: the run ended before its first save)
        before = check_loadable(weights)
        at_save = (survived + 1) % checkpoint_every == 0
        if at_save:
            killed = kill_during_checkpoint(proc, weights)
        else:
            killed = kill_after(proc, rng.uniform(0, window_epochs * epoch_s))
        if not killed:
            if proc.returncode != 0:
                raise RuntimeError(f"run ended with {proc.returncode}; see {log}")
            break
        survived += 1
        during_save += at_save
        after = check_loadable(weights)
        if before is not None and (after is None or after < before):
            lost.append(before)

    epochs_logged = metric_epochs(run)
    final, ref_final = load_checkpoint(weights / "last.pt"), load_checkpoint(reference / "weights" / "last.pt")
    return {
        "kills_survived": survived,
        "kills_during_checkpoint_write": during_save,
        "resumes": resumes,
        "restarts_before_first_checkpoint": restarts,
        "epochs": epochs,
        "epochs_lost": lost,
        "metrics_csv_epochs_exactly_once": epochs_logged == list(range(1, epochs + 1)),
        "metrics_csv_epochs": epochs_logged,
        "final_epoch": int(final["epoch"]) + 1,
        "model_vs_uninterrupted": compare(final["model"], ref_final["model"]),
        "ema_vs_uninterrupted": compare(final["ema"], ref_final["ema"]),
        "best_fitness": [final["best_fitness"], ref_final["best_fitness"]],
        "uninterrupted_run_s": round(reference_s, 1),
        "seconds_per_epoch": round(epoch_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="training seed (both runs)")
    parser.add_argument("--kill-seed", type=int, default=1, help="seed of the kill moments")
    parser.add_argument("--checkpoint-every", type=int, default=4, help="every Nth kill lands in a checkpoint write")
    parser.add_argument("--window-epochs", type=float, default=1.0, help="random kills land within this many "
                        "epochs after a run's setup")
    parser.add_argument("--work", type=Path, default=None, help="folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="yoloswap-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    result = soak(work, args.kills, args.epochs, args.seed, args.checkpoint_every, random.Random(args.kill_seed),
                  args.window_epochs)
    result["work"] = str(work)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
