"""Disk trouble while saving: a full disk or a read-only folder stops the run with one line, and the previous
checkpoint stays whole (the write goes to a temp file that is removed; only a complete file is renamed over it)."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from tests.make_data import ultralytics_set
from yoloswap import checkpoint as ckpt_module
from yoloswap.checkpoint import load_checkpoint, save_checkpoint
from yoloswap.errors import CheckpointError


def fail_with(code: int, write_first: bool = False):
    def fail(obj, f, *args, **kwargs):
        if write_first:
            f.write(b"half a checkpoint" * 1000)  # the disk filled up part-way through
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("target", "code", "reason"),
    [
        ("torch.save", errno.ENOSPC, "the disk is full"),
        ("torch.save", errno.EDQUOT, "the disk quota is exceeded"),
        ("os.fsync", errno.ENOSPC, "the disk is full"),  # delayed allocation: the error comes at fsync
        ("os.replace", errno.EROFS, "the file system is read-only"),
        ("open", errno.EACCES, "permission denied"),
        ("torch.save", errno.EIO, "Input/output error"),  # anything else: the system's words
    ],
)
def test_a_failed_write_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, target, code, reason):
    path = tmp_path / "weights" / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def raise_it(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if target == "torch.save":
        monkeypatch.setattr(ckpt_module.torch, "save", fail_with(code, write_first=True))
    elif target == "open":
        monkeypatch.setattr(ckpt_module, "open", raise_it, raising=False)  # shadows the builtin in that module
    else:
        module, name = target.split(".")
        monkeypatch.setattr(getattr(ckpt_module, module), name, raise_it)
    with pytest.raises(CheckpointError) as err:
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()

    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write checkpoint {path}: {reason} (the previous last.pt is intact)")
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # the temp file is gone


def test_a_first_save_that_fails_says_nothing_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_module.torch, "save", fail_with(errno.ENOSPC, write_first=True))
    with pytest.raises(CheckpointError, match=r"the disk is full \(nothing was written\)"):
        save_checkpoint({"w": torch.ones(1)}, tmp_path / "best.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the monkeypatched cases cover it")
def test_a_real_read_only_folder(tmp_path):
    folder = tmp_path / "weights"
    save_checkpoint({"epoch": 1}, folder / "last.pt")
    folder.chmod(0o555)
    try:
        with pytest.raises(CheckpointError, match=r"permission denied \(the previous last.pt is intact\)"):
            save_checkpoint({"epoch": 2}, folder / "last.pt")
    finally:
        folder.chmod(0o755)
    assert load_checkpoint(folder / "last.pt")["epoch"] == 1


@pytest.mark.slow
def test_training_stops_with_one_line_when_the_disk_fills_and_resumes_once_it_is_freed(cli, tmp_path, monkeypatch):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=2)
    run = tmp_path / "run"
    real_save, calls = torch.save, []

    def fills_up_in_epoch_2(obj, f, *args, **kwargs):
        calls.append(obj["epoch"])
        if obj["epoch"] == 1:  # 0-based: the second epoch's checkpoint
            return fail_with(errno.ENOSPC, write_first=True)(obj, f)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_module.torch, "save", fills_up_in_epoch_2)
    args = ["--backbone", "yolov5n", "--img-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu"]
    code, _, err = cli("train", *args, "--epochs", "2", "--data", str(data), "--out", str(run))
    assert code == 1
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith(f"Error: cannot write checkpoint {run / 'weights' / 'last.pt'}: the disk is full "
                                "(the previous last.pt is intact)")  # fmt: skip
    assert "Traceback" not in err
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 0
    assert sorted(p.name for p in (run / "weights").iterdir()) == ["best.pt", "last.pt"]

    monkeypatch.undo()  # space freed
    code, _, err = cli("train", "--resume", str(run), "--workers", "0", "--device", "cpu")
    assert code == 0, err
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 1
    epochs = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]  # epoch 2's row, logged before its save failed, is not repeated


def test_temp_files_left_by_a_killed_save_are_removed_by_the_next_one(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".last.pt.{int(dead.stdout)}.deadbeef.tmp"  # what kill -9 during a save leaves
    orphan.write_bytes(b"half")
    live = tmp_path / f".last.pt.{os.getppid()}.cafef00d.tmp"  # another live process mid-save: not touched
    live.write_bytes(b"busy")
    save_checkpoint({"epoch": 3}, tmp_path / "last.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.pt", live.name])
