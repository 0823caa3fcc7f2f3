"""--patience: a run whose fitness stops improving ends early, says so, keeps its best epoch, and stays finished."""

from __future__ import annotations

import csv
import io

import pytest
import yaml
from rich.console import Console

import yoloswap.training.loop as trainer
from tests.make_data import ultralytics_set
from yoloswap.checkpoint import load_checkpoint
from yoloswap.config.options import TrainOptions
from yoloswap.errors import TrainingError, UsageError

pytestmark = pytest.mark.slow


def _options(data, **changes) -> TrainOptions:
    base = dict(backbone="yolov5n", data=str(data), epochs=6, img_size=64, batch_size=2, nominal_batch=2,
                workers=0, device="cpu", amp=False, optimizer="sgd", close_mosaic=0)
    return TrainOptions(**(base | changes))


def test_patience_stops_the_run_keeps_the_best_epoch_and_a_resume_says_it_is_finished(tmp_path, monkeypatch):
    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])  # best after epoch 1, then only worse
    monkeypatch.setattr(trainer, "fitness", lambda metrics: metrics.setdefault("_fitness", next(scores)))
    log = io.StringIO()
    run = tmp_path / "run"
    trainer.train(_options(data, patience=2), out=run, console=Console(file=log, width=200))
    epochs = [r["epoch"] for r in csv.DictReader((run / "metrics.csv").open())]
    assert epochs == ["1", "2", "3"]  # epochs 2 and 3 did not improve: patience 2 is spent
    assert "stopping early" in log.getvalue() and "best epoch was 1" in log.getvalue()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["stopped_early"] == {"epoch": 3, "best_epoch": 1, "patience": 2}
    assert load_checkpoint(run / "weights" / "best.pt")["epoch"] == 0
    assert (run / "confusion_matrix.png").is_file() and (run / "PR_curve.png").is_file()
    with pytest.raises(TrainingError, match="already finished.*--patience 2 stopped it at epoch 3"):
        trainer.train(_options(data), resume=run, console=Console(file=io.StringIO()))


def test_patience_must_not_be_negative():
    with pytest.raises(UsageError, match="--patience"):
        _options("x", patience=-1).check()
