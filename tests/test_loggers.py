"""--logger tensorboard,mlflow: what the loggers wrote, read back with each tool's own reader; resume continues the
same TensorBoard folder and MLflow run; a missing package and a failing logger never cost a run."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import yoloswap.training.loggers as loggers
import yoloswap.training.loop as trainer
from tests.make_data import ultralytics_set
from yoloswap.config.options import TrainOptions
from yoloswap.errors import ConfigError, UsageError

pytestmark = pytest.mark.slow


def _options(data, **changes) -> TrainOptions:
    base = dict(backbone="yolov5n", data=str(data), epochs=2, img_size=64, batch_size=2, nominal_batch=2,
                workers=0, device="cpu", amp=False, optimizer="sgd")
    return TrainOptions(**(base | changes))


def test_tensorboard_and_mlflow_record_every_epoch_and_a_resume_continues_the_same_runs(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=2, n_val=1)
    uri = str(tmp_path / "mlruns")
    run = tmp_path / "run"
    options = _options(data, logger="tensorboard,mlflow", mlflow_uri=uri)
    trainer.train(options, out=run, console=Console(file=io.StringIO()))
    trainer.train(options, resume=run, extend_to=3, console=Console(file=io.StringIO()))

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("metrics/mAP50-95")] == [1, 2, 3]
    assert {"metrics/precision", "metrics/recall", "train/box_loss"} <= set(events.Tags()["scalars"])
    assert any(t.startswith("lr/group/") for t in events.Tags()["scalars"])
    assert "val_predictions" in events.Tags()["images"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=loggers.mlflow_tracking(uri)[0])
    experiment = client.get_experiment_by_name("yoloswap")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the resume logged to the same run
    run_id = runs[0].info.run_id
    assert (run / "mlflow_run_id.txt").read_text() == run_id
    assert [m.step for m in client.get_metric_history(run_id, "metrics/mAP50")] == [1, 2, 3]
    assert runs[0].data.params["options.backbone"] == "yolov5n"
    artefacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"best.pt", "PR_curve.png", "confusion_matrix.png"} <= artefacts


def test_a_missing_logger_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'yoloswap\[mlflow\]'"):
        loggers.logger_names("mlflow")
    with pytest.raises(UsageError, match="unknown logger"):
        loggers.logger_names("wandb")


def test_a_logger_that_fails_warns_once_and_is_silenced():
    calls, said = [], []

    class Broken:
        def __call__(self, event):
            calls.append(event)
            raise OSError("disk full")

        def close(self, run):
            raise AssertionError("a failed logger is not called again")

    guarded = loggers.Guarded("tensorboard", Broken(), said.append)
    guarded("epoch 1")
    guarded("epoch 2")
    guarded.close(None)
    assert calls == ["epoch 1"] and len(said) == 1 and "disk full" in said[0]
