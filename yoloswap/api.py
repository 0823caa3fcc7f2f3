"""yoloswap from Python: the functions the command line calls, for notebooks and scripts.

```python
import yoloswap
yoloswap.list_backbones()                                   # the presets, channels probed
yoloswap.probe("convnext-tiny").channels                    # (192, 384, 768)
model = yoloswap.build("convnext-tiny", num_classes=3)      # a plain nn.Module for your own loop
run = yoloswap.train("yolov5n", data="my.yaml", epochs=50)  # every `train` option as a keyword
det = yoloswap.load(run.best)                                # .pt, .onnx, .torchscript or OpenVINO .xml
for r in det.predict("images/"):
    r.boxes, r.scores, r.classes, r.plot()
yoloswap.val(run.best).metrics["map50"]
yoloswap.export(run.best, format="onnx")
```

Keyword arguments carry the command line's names (``img_size`` for ``--img-size``) and take their defaults from
the same one place (``config/options.py`` for training, ``ops.py`` for thresholds). Errors raise
:class:`yoloswap.errors.YoloswapError` (a subclass per kind: data, checkpoint, usage...), never ``sys.exit``.
Heavy libraries are imported inside the functions, so ``import yoloswap`` stays instant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # for the signatures only
    import numpy as np
    import torch

    from yoloswap.backbones.probe import ProbeResult

# The thresholds' one home is ops.py; restated here as plain numbers would be a second home, so the signatures
# read them from there (ops.py imports only torch, which every call below needs anyway).
from yoloswap import ops

__all__ = ["list_backbones", "probe", "build", "train", "load", "val", "export", "Run", "Detector", "Result",
           "Validation"]


def list_backbones(all: bool = False, source: str | None = None, pattern: str | None = None) -> list[dict]:  # noqa: A002
    """The backbone presets with their probed channels (as ``yoloswap list-backbones --json``).

    Args:
        all: every timm and torchvision model from the shipped compatibility sweep instead of the presets.
        source: with ``all``: only ``"timm"`` or ``"torchvision"``.
        pattern: with ``all``: names matching a glob, e.g. ``"convnext*"``.

    Returns:
        One dict per backbone: ``name``, ``family``, ``source``, ``weights``, ``channels``, ``strides``, ``params``
        for presets; the sweep's row (``source``, ``name``, ``status``, ``reason``...) with ``all``.
    """
    if all or source or pattern:
        from yoloswap.backbones.compatibility import read_compatibility, select

        return [dict(r) for r in select(read_compatibility(), source, pattern)]
    from yoloswap.backbones.probe import cached_probe
    from yoloswap.config.presets import load_presets

    rows = []
    for p in load_presets():
        r = cached_probe(p, (640, 640))  # the meta device: shapes only, nothing allocated
        rows.append({"name": p.name, "family": p.family, "description": p.description,
                     "source": f"{p.model.source}:{p.model.name}", "weights": p.weights,
                     "channels": list(r.channels), "strides": list(r.strides), "params": r.params})
    return rows


def probe(backbone: str, img_size: int | tuple[int, int] = 640, device: str = "auto") -> ProbeResult:
    """Build ``backbone`` and measure what it outputs per level, as ``yoloswap probe-channels`` does.

    Args:
        backbone: a preset name, a preset YAML path, ``timm:NAME`` or ``torchvision:NAME``.
        img_size: the dummy input's side (or ``(height, width)``).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``meta`` (shapes only).

    Returns:
        A :class:`~yoloswap.backbones.probe.ProbeResult` with ``channels``, ``strides``, ``shapes`` and ``params``.
    """
    from yoloswap.backbones.probe import parse_img_size
    from yoloswap.backbones.probe import probe as probe_preset
    from yoloswap.backbones.resolve import resolve_backbone

    return probe_preset(resolve_backbone(backbone), parse_img_size(img_size), device)


def build(backbone: str, num_classes: int = 80, head: str | None = None, img_size: int = 640,
          neck_width: str | float | None = None) -> torch.nn.Module:
    """A detector on ``backbone``: neck and head sized to the probed channels, randomly initialised.

    A plain ``nn.Module`` for your own loop: ``model(images01)`` returns the head's raw outputs in training mode;
    ``model.infer(images01)`` gives ``(B, P, 4 + num_classes)`` rows of x1, y1, x2, y2 and class scores;
    ``model.head.loss`` is the head's loss. Pretrained backbone weights are not loaded (``train`` does that).

    Args:
        backbone: a preset name, a preset YAML path, ``timm:NAME`` or ``torchvision:NAME``.
        num_classes: classes the head predicts.
        head: ``yolov5`` (anchors) or ``yolov8`` (anchor-free); ``None``: the preset's.
        img_size: the size the model will run at (windowed backbones are built for it).
        neck_width: as ``--neck-width``: a multiplier or ``c3,c4,c5``; ``None``: the preset's.
    """
    from yoloswap.assembly import build_detector, check_head, parse_neck_width
    from yoloswap.backbones.probe import fit_to_size
    from yoloswap.backbones.resolve import resolve_backbone

    preset = resolve_backbone(backbone)
    if head is not None:
        preset = dataclasses.replace(preset, head=check_head(head, "head"))
    size = (img_size, img_size)
    width = parse_neck_width(None if neck_width is None else str(neck_width))
    model, _ = build_detector(fit_to_size(preset, size), num_classes, size, width)
    return model


@dataclass(frozen=True)
class Run:
    """A finished training run: its folder and its final validation metrics."""

    folder: Path
    metrics: dict = field(default_factory=dict)

    @property
    def best(self) -> Path:
        """The checkpoint with the best fitness (``weights/best.pt``)."""
        return self.folder / "weights" / "best.pt"

    @property
    def last(self) -> Path:
        """The last epoch's checkpoint (``weights/last.pt``), the one ``resume`` continues."""
        return self.folder / "weights" / "last.pt"


def train(backbone: str | None = None, data: str | Path | None = None, *, out: str | Path | None = None,
          resume: str | Path | None = None, exist_ok: bool = False, verbose: bool = True, console: Any = None,
          **options: Any) -> Run:
    """Train a detector on ``backbone`` (the built-in data set unless ``data`` is given), as ``yoloswap train``.

    Args:
        backbone: a preset name, a preset YAML path, ``timm:NAME`` or ``torchvision:NAME`` (default: the options'
            default, ``yolov5s``).
        data: a data YAML or data set folder; ``None``: the built-in synthetic set (with its own small defaults).
        out: the run folder (default ``runs/train/expN``, the next free one).
        resume: continue the run in this folder from its last checkpoint (``epochs`` then extends it).
        exist_ok: allow ``out`` to be an existing run folder (it is overwritten).
        verbose: log lines and progress on stderr (a rich bar on a terminal or in Jupyter); ``False``: silent.
        console: a rich ``Console`` for the log and the bars (default: one on stderr).
        **options: any ``yoloswap train`` option by its Python name (``epochs``, ``img_size``, ``batch_size``,
            ``head``, ``lr``, ``mosaic``...): the fields of :class:`yoloswap.config.options.TrainOptions` and of its
            ``AugmentConfig``. An unknown name raises a :class:`~yoloswap.errors.UsageError` that suggests the
            closest one.

    Returns:
        A :class:`Run`: ``folder``, ``best``, ``last`` and the final ``metrics``.
    """
    from rich.console import Console

    from yoloswap.config.options import TrainOptions
    from yoloswap.run_folders import new_run_dir
    from yoloswap.training.loop import train as run_training

    given = train_options(backbone=backbone, **options)
    opts = TrainOptions.for_data(None if data is None else str(data), given)
    folder = Path(resume) if resume is not None else Path(out) if out is not None else new_run_dir()
    console = console if console is not None else Console(stderr=True, quiet=not verbose)
    progress = None
    if verbose:
        from yoloswap.training.progress_bars import make_progress

        progress = make_progress(console)
    metrics = run_training(opts, out=None if resume is not None else folder, exist_ok=exist_ok,
                           resume=None if resume is None else folder, console=console, progress=progress,
                           extend_to=options.get("epochs") if resume is not None else None)
    return Run(folder, dict(metrics or {}))


def train_options(**given: Any) -> dict[str, Any]:
    """``given`` training options checked by name against the one schema (``None`` = not given, the default).

    Both the command line and :func:`train` pass through here, so a name and its check live in one place.
    """
    from yoloswap.assembly import check_head, parse_neck_width
    from yoloswap.config.options import TrainOptions, option_names
    from yoloswap.errors import UsageError
    from yoloswap.errors import suggestion

    known = option_names()
    unknown = [k for k in given if k not in known]
    if unknown:
        k = unknown[0]
        raise UsageError(f"unknown training option {k!r}{suggestion(k, sorted(known)) or ''} "
                         f"(the fields of {TrainOptions.__name__} and its augment settings)")
    values = dict(given)
    if isinstance(values.get("neck_width"), (str, int, float)):
        values["neck_width"] = parse_neck_width(str(values["neck_width"]))
    if values.get("head") is not None:
        values["head"] = check_head(values["head"])
    return values


@dataclass(frozen=True)
class Result:
    """The detections in one picture, in its own pixels."""

    boxes: np.ndarray  # (K, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (K,) float32
    classes: np.ndarray  # (K,) int64 class ids
    names: list[str]  # class id -> name
    path: str | None  # the image file, or None for a frame of a video, webcam or stream
    image: np.ndarray  # HxWx3 uint8 RGB, as read
    frame: int = 0  # frame number in a capture

    def plot(self, show_scores: bool = True) -> np.ndarray:
        """The picture with its boxes and ``name score`` labels drawn, HxWx3 uint8 RGB."""
        import numpy as np

        from yoloswap.reports.plots import draw_detections

        return np.asarray(draw_detections(self.image, self._dets(), self.names, show_scores=show_scores))

    def to_json(self) -> dict:
        """The record ``yoloswap predict`` writes to ``predictions.json`` for this picture."""
        from yoloswap.deploy.predict import detections_json

        return detections_json(self.path, self._dets(), self.names)

    def _dets(self) -> torch.Tensor:
        import numpy as np
        import torch

        rows = np.concatenate([self.boxes, self.scores[:, None], self.classes[:, None].astype(np.float32)], axis=1)
        return torch.from_numpy(rows.reshape(-1, 6))


class Detector:
    """A trained detector in any runtime (PyTorch checkpoint, ONNX Runtime, TorchScript, OpenVINO)."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.names: list[str] = list(runtime.names)
        self.img_size: int = runtime.img_size
        self.backbone: str = runtime.backbone
        self.kind: str = runtime.kind  # pytorch | onnxruntime | torchscript | openvino

    def __repr__(self) -> str:
        return f"Detector({self.backbone!r}, {self.kind}, {len(self.names)} classes, {self.img_size} px)"

    def predict(self, source: str | Path, conf: float = ops.PREDICT_CONF, iou: float = ops.PREDICT_IOU,
                max_det: int = ops.MAX_DET, img_size: int | None = None, classes: str | list | None = None,
                batch_size: int = 8, workers: int = 2) -> Iterator[Result]:
        """Detect objects in every picture of ``source``, one :class:`Result` at a time (a generator).

        Args:
            source: an image, a folder, a glob, a ``.txt`` list, a video, a webcam index (``"0"``) or a stream URL.
            conf: score threshold; iou: NMS IoU threshold; max_det: most detections kept per picture.
            img_size: inference side (default: the size the model was trained or exported at).
            classes: keep only these classes: names or ids, a list or a comma-separated string.
            batch_size: pictures per forward pass; workers: processes decoding image files.
        """
        from yoloswap.deploy.predict import PredictSettings, parse_classes, predict_source
        from yoloswap.deploy.sources import open_source

        if isinstance(classes, (list, tuple)):
            classes = ",".join(map(str, classes))
        found = open_source(str(source))
        settings = PredictSettings(self.runtime.size_for(img_size), conf, iou, max_det,
                                   parse_classes(classes, self.names), batch_size, workers)
        for frame, dets in predict_source(self.runtime, found, settings):
            d = dets.float().cpu().numpy()
            yield Result(d[:, :4].copy(), d[:, 4].copy(), d[:, 5].astype("int64"), self.names,
                         None if frame.path is None else str(frame.path), frame.image, frame.index)

    def __call__(self, source: str | Path, **kwargs: Any) -> list[Result]:
        """All results of :meth:`predict` as a list (for a few images; use :meth:`predict` for videos)."""
        return list(self.predict(source, **kwargs))


def load(weights: str | Path, device: str = "auto") -> Detector:
    """A trained detector from a yoloswap checkpoint or an exported file (chosen by its suffix).

    Args:
        weights: ``best.pt`` / ``last.pt``, or an exported ``.onnx``, ``.torchscript`` or OpenVINO ``.xml``.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
    """
    from yoloswap.deploy.runtimes import load_runtime
    from yoloswap.device import resolve_device

    return Detector(load_runtime(Path(weights), resolve_device(device)))


@dataclass(frozen=True)
class Validation:
    """What :func:`val` measured: ``metrics`` as ``yoloswap val --json`` prints them, and the full evaluation."""

    metrics: dict
    details: Any  # the per-class rows and curves (evaluation.metrics.Details)
    evaluation: Any  # evaluation.workflow.Validation: confusion(), save_json()


def val(weights: str | Path, data: str | Path | None = None, split: str = "val", img_size: int | None = None,
        batch_size: int = 16, device: str = "auto", workers: int = 2, conf: float = ops.EVAL_CONF,
        iou: float = ops.EVAL_IOU) -> Validation:
    """COCO mAP of a checkpoint or an exported file on a split of its data, as ``yoloswap val``.

    Args:
        weights: a yoloswap checkpoint or an exported file.
        data: data YAML or folder (default: the one the model was trained on).
        split: ``val``, ``train`` or another split the data names.
        img_size: evaluation side (default: the training size).
        conf, iou: score threshold (low, so the curve is complete) and NMS IoU.
    """
    from yoloswap.evaluation.workflow import validate_file

    result = validate_file(Path(weights), data, split, img_size, batch_size, device, workers, conf, iou)
    return Validation(result.summary(), result.details, result)


def export(weights: str | Path, format: str = "onnx", out: str | Path | None = None, **options: Any) -> Path:  # noqa: A002
    """Write a trained checkpoint as ``format`` (``onnx``, ``torchscript``, ``openvino``); returns the file.

    Args:
        weights: a yoloswap checkpoint.
        format: the export format.
        out: the output file (default: next to the weights).
        **options: the fields of :class:`yoloswap.deploy.export.ExportSpec` (``img_size``, ``layout`` (``yoloswap``,
            ``ultralytics`` or ``yolov5``: docs/yolo-ecosystem.md), ``batch``, ``dynamic``,
            ``half``, ``opset``, ``nms``, ``conf``, ``iou``, ``max_det``...) and ``device`` (``cpu`` or ``cuda``).
    """
    from yoloswap.deploy.export import FORMATS, export_spec, export_model
    from yoloswap.deploy.runtimes import TorchRuntime
    from yoloswap.device import resolve_device
    from yoloswap.errors import UsageError

    if format not in FORMATS:
        raise UsageError(f"format {format!r}: choose one of {', '.join(FORMATS)}")
    weights = Path(weights)
    device = options.pop("device", "cpu")
    source = TorchRuntime(weights, "cpu")
    spec = export_spec(source.size_for(options.pop("img_size", None)), **options)
    path = Path(out) if out is not None else weights.with_suffix(FORMATS[format][0])
    export_model(source.model, source.names, source.backbone, format, spec, path, resolve_device(device),
                 trained_on=source.trained_on)
    return path
