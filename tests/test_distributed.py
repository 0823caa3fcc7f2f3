"""Several processes (torchrun / DDP), checked on CPU with 2 Gloo processes: every training image once per epoch
(plus the sampler's stated padding), every validation image scored exactly once, one writer per run folder, and a
run whose launcher was killed with kill -9 stops and resumes at the right epoch."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.make_data import ultralytics_set
from yoloswap.training import distributed, runlock
from yoloswap.errors import TrainingError, UsageError

TINY = ["--backbone", "yolov5n", "--img-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hold_in_subprocess(run: Path) -> subprocess.Popen:
    code = ("import sys, time; from pathlib import Path; from yoloswap.training import runlock; "
            "runlock.hold(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# ------------------------------------------------------------------------------------------------ one writer


def test_a_second_writer_is_refused_while_the_first_lives_and_accepted_once_it_died(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    first = _hold_in_subprocess(run)
    try:
        with pytest.raises(TrainingError, match=f"in use by process {first.pid} on "):
            runlock.hold(run)
        assert runlock.holder(run).startswith(f"process {first.pid} ")
        # the trainer asks for the same lock: one line naming the live process, before any work
        code, _, err = cli("train", *TINY, "--epochs", "1", "--out", str(run), "--exist-ok")
        assert code == 1 and f"run folder {run} is in use by process {first.pid}" in err
        assert len(err.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGKILL)  # dies without any clean-up: the OS releases the lock
        first.wait()
    assert runlock.holder(run) is None
    runlock.hold(run)
    try:
        assert runlock.holder(run).startswith(f"process {os.getpid()} ")
    finally:
        runlock.release(run)
    assert runlock.holder(run) is None


# ------------------------------------------------------------------------------------------------ start and devices


def test_the_start_line_states_processes_backend_and_per_process_batch():
    two = distributed.Dist(rank=0, local_rank=0, world_size=2)
    cpu = torch.device("cpu")
    assert distributed.describe(two, cpu, 16) == (
        "processes: 2 (gloo, rank 0 writes the run folder); batch 16 over all of them = 8 per process")
    assert distributed.describe(two, cpu, 15).endswith("= 7 per process; 14 in all, not 15")
    assert distributed.describe(distributed.Dist(), cpu, 16) == "processes: 1 (device cpu); batch 16"


def test_a_fixed_gpu_or_more_processes_than_gpus_is_a_one_line_usage_error(monkeypatch):
    two = distributed.Dist(rank=1, local_rank=1, world_size=2)
    with pytest.raises(UsageError, match=r"--device cuda:1 under torchrun: .*pass --device cuda"):
        distributed.setup(two, torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UsageError, match=r"more processes than GPUs: local rank 1 has none .*--nproc_per_node 1"):
        distributed.setup(two, torch.device("cuda"))


# ------------------------------------------------------------------------------------------------ coverage


def _coverage_worker(rank: int, world: int, port: int, data: str, out: str, report: str) -> None:
    """One rank of a real 2-epoch run, recording which images it trained on per epoch and which it scored."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import yoloswap.training.loop as trainer
    from yoloswap.data.dataset import DetectionDataset
    from yoloswap.config.options import TrainOptions

    seen = {"train": {}, "scored": []}
    epoch_now = [0]
    real_item, real_epoch, real_eval = DetectionDataset.__getitem__, trainer.train_one_epoch, trainer.evaluate

    def item(self, index):
        if self.augment:
            seen["train"].setdefault(str(epoch_now[0]), []).append(str(self.samples[index].path))
        return real_item(self, index)

    def one_epoch(run, loader, loss_fn, epoch, console):
        epoch_now[0] = epoch
        return real_epoch(run, loader, loss_fn, epoch, console)

    def evaluate(*args, **kwargs):
        result = real_eval(*args, **kwargs)
        seen["scored"].append([im["id"] for im in result.accumulator.gt_dict()["images"]])
        return result

    DetectionDataset.__getitem__, trainer.train_one_epoch, trainer.evaluate = item, one_epoch, evaluate
    options = TrainOptions(backbone="yolov5n", data=data, epochs=2, img_size=64, batch_size=4, nominal_batch=4,
                           workers=0, device="cpu", close_mosaic=2)  # no mosaic: one image per item
    trainer.train(options, out=Path(out))
    Path(report).write_text(json.dumps(seen))


@pytest.mark.slow
def test_every_image_once_per_epoch_and_every_validation_image_scored_once(tmp_path):
    import torch.multiprocessing as mp

    n_train, n_val = 7, 3  # 7 over 2 ranks: DistributedSampler pads to 8, repeating one image
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=n_train, n_val=n_val)
    reports = [tmp_path / f"rank{r}.json" for r in range(2)]
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_coverage_worker, args=(r, 2, port, str(data), str(tmp_path / "run"), str(reports[r])))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    seen = [json.loads(r.read_text()) for r in reports]
    train_images = {str(p) for p in (tmp_path / "data" / "images" / "train").glob("*.png")}
    for epoch in ("0", "1"):
        per_rank = [s["train"][epoch] for s in seen]
        assert [len(x) for x in per_rank] == [4, 4]  # ceil(7 / 2) each
        together = per_rank[0] + per_rank[1]
        assert set(together) == train_images  # every training image, every epoch
        assert len(together) - len(set(together)) == 1  # exactly the sampler's padding: 8 - 7
    assert seen[0]["train"]["0"] != seen[0]["train"]["1"]  # reshuffled per epoch (set_epoch)
    # evaluation: rank 0 alone scores the whole validation set after each epoch, each image exactly once
    assert seen[1]["scored"] == []
    assert len(seen[0]["scored"]) == 2
    for ids in seen[0]["scored"]:
        assert len(ids) == n_val and len(set(ids)) == n_val


# ------------------------------------------------------------------------------------------------ kill -9 and resume


def _torchrun(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
            "-m", "yoloswap", "train", *args]


def _epochs(run: Path) -> list[str]:
    path = run / "metrics.csv"
    return [r["epoch"] for r in csv.DictReader(path.open())] if path.is_file() else []


@pytest.mark.slow
def test_torchrun_killed_with_kill_9_stops_its_workers_and_resumes_at_the_right_epoch(tmp_path):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=16)
    run = tmp_path / "run"
    args = [*TINY, "--epochs", "4", "--data", str(data), "--out", str(run)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = subprocess.Popen(_torchrun(_free_port(), *args), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        last = run / "weights" / "last.pt"
        while not last.is_file() and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.is_file() and launcher.poll() is None, "the first epoch did not finish in time"
        launcher.send_signal(signal.SIGKILL)  # torchrun itself, as `kill -9 <torchrun pid>` does
        launcher.wait()
        deadline = time.monotonic() + 30  # the orphaned workers get SIGTERM from the kernel and let go of the run
        while runlock.holder(run) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert runlock.holder(run) is None, "workers kept training after their launcher died"
    finally:
        if launcher.poll() is None:
            launcher.kill()
    from yoloswap.checkpoint import load_checkpoint

    saved = int(load_checkpoint(run / "weights" / "last.pt")["epoch"]) + 1  # epochs completed and checkpointed
    assert 1 <= saved < 4, "the orphaned workers trained on to the end after their launcher died"

    resumed = subprocess.run(_torchrun(_free_port(), *TINY, "--resume", str(run)), env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[:3000]
    assert f"from epoch {saved + 1}/4" in resumed.stderr
    assert "processes: 2 (gloo" in resumed.stderr
    assert _epochs(run) == ["1", "2", "3", "4"]  # continued where it stopped: no epoch twice, none interleaved


def test_resume_drops_metrics_rows_written_after_the_last_checkpoint(tmp_path):
    from yoloswap.training.hooks import append_metrics, trim_metrics
    from yoloswap.training.loop import METRIC_COLUMNS

    path = tmp_path / "metrics.csv"
    for epoch in (1, 2, 3):
        append_metrics(path, {"epoch": epoch, "train/box_loss": 0.5}, METRIC_COLUMNS)
    trim_metrics(path, 2)  # the checkpoint holds 2 epochs: the run died before saving the third
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and list(rows[0]) == list(METRIC_COLUMNS)
    assert rows[1]["train/box_loss"] == "0.5"
