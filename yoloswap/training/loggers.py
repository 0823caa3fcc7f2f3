"""Experiment loggers (TensorBoard, MLflow) behind one small interface, run as epoch hooks on rank 0.

A logger is made once per run (``make(run, resumed)``), is called with every finished epoch (an
:class:`~yoloswap.training.hooks.EpochEnd`) and is closed once after training (``close(run)``: final artefacts).
metrics.csv is always written by the hooks; these are the optional extras (``yoloswap[tensorboard]``,
``yoloswap[mlflow]``). Adding one is a class here and a line in :data:`LOGGERS`.

A logger never costs a run: :class:`Guarded` turns its first failure (disk full, tracking server gone) into one
warning and silences it for the rest of the run. A missing package is found before training starts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from collections.abc import Callable


from yoloswap.errors import ConfigError, UsageError
from yoloswap.training.hooks import EpochEnd
from yoloswap.training.state import Run, run_config

MLFLOW_RUN_ID_FILE = "mlflow_run_id.txt"  # in the run folder: --resume continues the same MLflow run
MLFLOW_EXPERIMENT = "yoloswap"
DEFAULT_MLFLOW_URI = "mlruns"  # a local store in the working directory


def mlflow_tracking(spec: str | None) -> tuple[str, str | None]:
    """The tracking URI and (for a local folder) the artefact location of ``--mlflow-uri``. A URI with a scheme
    is used as given; a plain folder holds an SQLite store (``mlflow.db``) and ``artifacts/``: MLflow 3 no longer
    accepts its old folder store."""
    spec = spec or DEFAULT_MLFLOW_URI
    if "://" in spec or spec.startswith(("sqlite:", "databricks")):
        return spec, None
    folder = Path(spec).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def _numbers(row: dict) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k != "epoch"}


class TensorBoardLogger:
    """Scalars (losses, mAPs, precision, recall, lr per group) and the validation image grid, per epoch, into
    ``RUN/tensorboard/`` (the same folder on --resume, so TensorBoard shows one continuous run)."""

    package, extra = "tensorboard", "tensorboard"

    def __init__(self, run: Run, resumed: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.out / "tensorboard"))

    def __call__(self, event: EpochEnd) -> None:
        step = event.epoch + 1
        for key, value in _numbers(event.row).items():
            self.writer.add_scalar(key, value, step)
        for group in event.run.optimizer.param_groups:
            self.writer.add_scalar(f"lr/group/{group.get('name', 'group')}", float(group["lr"]), step)
        grid = event.run.out / "val_predictions.png"
        if grid.is_file():
            import numpy as np
            from PIL import Image

            with Image.open(grid) as picture:
                self.writer.add_image("val_predictions", np.asarray(picture.convert("RGB")), step,
                                      dataformats="HWC")
        self.writer.flush()

    def close(self, run: Run) -> None:
        self.writer.close()


class MlflowLogger:
    """Parameters (the resolved config), metrics per epoch and artefacts (best.pt, plots) to ``--mlflow-uri``,
    in experiment "yoloswap"; the run id is kept in the run folder so --resume logs to the same MLflow run."""

    package, extra = "mlflow", "mlflow"

    def __init__(self, run: Run, resumed: bool) -> None:
        from mlflow.tracking import MlflowClient

        uri, artefacts = mlflow_tracking(run.options.mlflow_uri)
        self.client = MlflowClient(tracking_uri=uri)
        id_file = run.out / MLFLOW_RUN_ID_FILE
        if resumed and id_file.is_file():
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(MLFLOW_EXPERIMENT)
        experiment_id = (experiment.experiment_id if experiment else
                         self.client.create_experiment(MLFLOW_EXPERIMENT, artifact_location=artefacts))
        self.run_id = self.client.create_run(experiment_id, run_name=run.out.name).info.run_id
        id_file.write_text(self.run_id)
        from mlflow.entities import Param

        params = _flatten(run_config(run))
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:500]) for k, v in params.items()])

    def __call__(self, event: EpochEnd) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k.replace(":", "_"), v, now, event.epoch + 1) for k, v in _numbers(event.row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self, run: Run) -> None:
        for name in ("weights/best.pt", "results.png", "confusion_matrix.png", "confusion_matrix.csv",
                     "PR_curve.png", "F1_curve.png", "val_predictions.png", "config.yaml"):
            path = run.out / name
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


LOGGERS = {"tensorboard": TensorBoardLogger, "mlflow": MlflowLogger}


def logger_names(spec: str | None) -> list[str]:
    """``--logger tensorboard,mlflow`` as names, checked against :data:`LOGGERS` and their packages (before
    training starts: a missing package is one line saying what to install)."""
    names = [n.strip().lower() for n in (spec or "").split(",") if n.strip()]
    for name in names:
        if name not in LOGGERS:
            raise UsageError(f"--logger {name}: unknown logger; choose from {', '.join(LOGGERS)} (CSV is always on)")
        cls = LOGGERS[name]
        if importlib.util.find_spec(cls.package) is None:
            raise ConfigError(f"--logger {name} needs the {cls.package} package: pip install 'yoloswap[{cls.extra}]'")
    return names


class Guarded:
    """A logger whose failures warn once and then stop it: a logger never ends a run."""

    def __init__(self, name: str, logger, log: Callable[..., None]) -> None:
        self.name, self.logger, self.log = name, logger, log

    def _safely(self, call, *args) -> None:
        if self.logger is None:
            return
        try:
            call(*args)
        except Exception as exc:  # disk full, server gone: training goes on without this logger
            self.log(f"[yellow]warning:[/] the {self.name} logger failed ({exc}); training goes on without it")
            self.logger = None

    def __call__(self, event: EpochEnd) -> None:
        if self.logger is not None:
            self._safely(self.logger, event)

    def close(self, run: Run) -> None:
        if self.logger is not None:
            self._safely(self.logger.close, run)


def open_loggers(run: Run, resumed: bool, log: Callable[..., None]) -> list[Guarded]:
    """The run's ``--logger`` loggers, made (a failure to start one warns, like a failure later)."""
    opened = []
    for name in logger_names(run.options.logger):
        try:
            opened.append(Guarded(name, LOGGERS[name](run, resumed), log))
        except Exception as exc:
            log(f"[yellow]warning:[/] could not start the {name} logger ({exc}); training goes on without it")
    return opened


def close_loggers(loggers: list[Guarded], run: Run) -> None:
    for logger in loggers:
        logger.close(run)



