"""``val`` as every entry point runs it: a weights file (``.pt``, ``.onnx`` or ``.torchscript``) through its
runtime, on the data it was trained on unless told otherwise, at its own size unless told otherwise.

One path for every file type, so a checkpoint and the file exported from it are scored on the same images by the
same loop (evaluation/loop.py) with the same defaults.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from yoloswap import ops
from yoloswap.errors import DataError
from yoloswap.evaluation.metrics import CONFUSION_CONF, CONFUSION_IOU, confusion_matrix


@dataclass
class Validation:
    """What ``val`` measured, and on what."""

    metrics: dict  # map, map50, map75, ... from the COCO evaluator
    accumulator: object  # the CocoAccumulator (its ``results()`` are the COCO results JSON)
    weights: Path
    backbone: str
    runtime: str  # pytorch | onnxruntime | torchscript
    data: Path  # the data YAML scored
    split: str
    images: int
    img_size: int
    warning: str | None = None  # class names that differ from the model's

    @property
    def details(self):
        """The per-class rows and curves (evaluation.metrics.Details) from the same COCO matching."""
        return self.accumulator.details

    def confusion(self, conf: float = CONFUSION_CONF, iou: float = CONFUSION_IOU):
        """(K+1, K+1) confusion matrix ``m[true, predicted]`` of the predictions, background last."""
        return confusion_matrix(self.accumulator.gt_dict(), self.accumulator.results(), conf, iou)

    def summary(self) -> dict:
        """The metrics and their context, as ``val --json`` prints them (keys documented in the README). Per-class
        figures are the ``classes`` rows only (their ``ap50_95`` is the evaluator's ``per_class`` AP): one place."""
        overall = {k: v for k, v in self.metrics.items() if k != "per_class"}
        return {**overall, **self.details.as_dict(), "images": self.images, "weights": str(self.weights), "backbone": self.backbone,
                "runtime": self.runtime, "data": str(self.data), "split": self.split, "img_size": self.img_size}

    def save_json(self, path: Path) -> None:
        """The predictions as COCO results JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.accumulator.results()))


def data_yaml_for(trained_on: str | None, data: str | Path | None, weights: Path) -> Path:
    """The data ``val`` scores (a data YAML or a data set folder): ``--data`` when given, else the one the model
    was trained on (recorded, as an absolute path, in the checkpoint and in an exported file's metadata), else the
    built-in set."""
    from yoloswap.data.synthetic import builtin_data_yaml

    if data is not None:
        return Path(data)
    if trained_on is None:
        return builtin_data_yaml()
    path = Path(trained_on).expanduser()
    if not path.exists():  # a YAML, or a folder in one of the layouts load_data_config reads
        raise DataError(f"{weights} was trained on {trained_on}, which is not found from here; pass --data")
    return path


def validate_file(weights: Path, data: str | Path | None = None, split: str = "val", img_size: int | None = None,
                  batch_size: int = 16, device: str = "auto", workers: int = 2, conf: float = ops.EVAL_CONF,
                  iou: float = ops.EVAL_IOU, status: Callable[[str], object] | None = None,
                  max_images: int | None = None) -> Validation:
    """Score ``weights`` on ``split`` of its data (its first ``max_images`` images when given: quick checks such
    as ``export --int8``'s). ``status(text)`` returns a context manager shown while it runs."""
    import contextlib

    from yoloswap.data.dataset import DetectionDataset, build_dataloader
    from yoloswap.data.formats import load_data_config
    from yoloswap.deploy.runtimes import load_runtime
    from yoloswap.device import resolve_device
    from yoloswap.evaluation.loop import evaluate

    weights = Path(weights)
    runtime = load_runtime(weights, resolve_device(device))
    cfg = load_data_config(data_yaml_for(runtime.trained_on, data, weights))
    if len(cfg.names) != len(runtime.names):
        raise DataError(f"{cfg.source}: {len(cfg.names)} classes, but {weights} was trained for "
                        f"{len(runtime.names)} (on {runtime.trained_on or 'the built-in set'}); pass --data with a "
                        "data set of those classes")
    warning = None
    if list(cfg.names) != list(runtime.names):
        warning = f"{cfg.source} names its classes {list(cfg.names)}, the model was trained on {list(runtime.names)}"
    size = runtime.size_for(img_size)
    ds = DetectionDataset(cfg.split(split).samples[:max_images], size, augment=False)
    loader = build_dataloader(ds, batch_size, False, workers, 0)
    shown = status(f"evaluating {weights} ({runtime.kind}) on {len(ds)} {split} images") if status else None
    with shown or contextlib.nullcontext():
        result = evaluate(runtime, loader, list(cfg.names), cfg.category_ids, conf=conf, iou=iou)
    return Validation(dict(result.metrics), result.accumulator, weights, runtime.backbone, runtime.kind, cfg.source,
                      split, len(ds), size, warning)
