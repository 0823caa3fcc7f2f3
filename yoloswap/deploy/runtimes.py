"""Runtimes: one small interface over "something that runs a detector", so predict, val and benchmark treat a
``.pt`` checkpoint and an exported ``.onnx`` alike and a user checks exactly the file they will deploy.

A runtime has ``names`` (class names), ``img_size`` (the size it was trained / exported at), ``backbone`` and

    infer(images01 (B, 3, H, W) float in [0, 1]) -> (B, P, 4 + nc) rows [x1, y1, x2, y2 (input pixels), scores]

the same contract as ``Detector.infer``, plus ``predict`` (NMS on top). ``eval()``/``to()`` make a runtime a
drop-in for a Detector where inference code expects a module. The table ``RUNTIMES`` maps a file suffix to its
loader; adding one (TensorRT, ...) is a class and a line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from yoloswap import ops
from yoloswap.deploy.layouts import layout_named
from yoloswap.errors import CheckpointError, UsageError


class Runtime(Protocol):
    names: list[str]
    img_size: int
    backbone: str
    kind: str  # "pytorch", "onnxruntime", "torchscript", "openvino"
    trained_on: str | None  # the data YAML the model was trained on (None: the built-in set)

    def infer(self, images01: torch.Tensor) -> torch.Tensor: ...

    def size_for(self, requested: int | None) -> int: ...


class _RuntimeBase:
    """Module-like conveniences shared by runtimes."""

    training = False
    kind = "?"
    trained_on: str | None = None

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def to(self, device):
        return self

    def predict(self, images01: torch.Tensor, conf: float = ops.PREDICT_CONF, iou: float = ops.PREDICT_IOU,
                max_det: int = ops.MAX_DET) -> list[torch.Tensor]:
        return ops.postprocess(self.infer(images01), conf, iou, max_det)

    def size_for(self, requested: int | None) -> int:
        """The input side to run at: ``--img-size`` when given, else the file's own size."""
        return requested or self.img_size


class TorchRuntime(_RuntimeBase):
    """A yoloswap checkpoint (or a YOLOv5 / Ultralytics / MMYOLO detector file, read as one) run by PyTorch eager."""

    kind = "pytorch"

    def __init__(self, path: Path, device: torch.device | str = "cpu", reparam: bool = True) -> None:
        from yoloswap.assembly import detector_from_checkpoint
        from yoloswap.deploy.reparam import reparameterized
        from yoloswap.foreign_detector import read_detector_file

        ckpt = read_detector_file(Path(path))
        model, preset, _, names, _ = detector_from_checkpoint(ckpt, path)
        self.device = torch.device(device)
        # Inference form (fused RepVGG/MobileOne branches) unless asked to keep the training form.
        self.model = (reparameterized(model) if reparam else model).eval().to(self.device)
        self.names = names
        self.backbone = preset.name
        self.img_size = int(ckpt["config"]["options"]["img_size"])
        self.trained_on = ckpt["config"]["options"].get("data")
        self._preset, self._path = preset, path

    def size_for(self, requested: int | None) -> int:
        from yoloswap.assembly import inference_size

        return inference_size(self._preset, self.img_size, requested, self._path)

    def to(self, device):
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def infer(self, images01: torch.Tensor) -> torch.Tensor:
        return self.model.infer(images01.to(self.device).float()).float().cpu()

    @torch.no_grad()
    def predict(self, images01: torch.Tensor, conf: float = ops.PREDICT_CONF, iou: float = ops.PREDICT_IOU,
                max_det: int = ops.MAX_DET) -> list[torch.Tensor]:
        """The detector's own ``predict``, so a ``.pt`` gives exactly what it gave before runtimes existed."""
        return [d.cpu() for d in self.model.predict(images01.to(self.device).float(), conf, iou, max_det)]


class OnnxRuntime(_RuntimeBase):
    """An exported ``.onnx`` run by ONNX Runtime (CUDA provider when asked for and available, else CPU).

    A file exported with a fixed batch is fed in chunks of that batch (the last one padded), so any number of
    images works; a fixed input size must match the images given.
    """

    kind = "onnxruntime"

    def __init__(self, path: Path, device: torch.device | str = "cpu") -> None:
        from yoloswap.deploy.export import read_metadata, require_onnx

        require_onnx()
        import onnxruntime as ort

        self.path = Path(path)
        meta = read_metadata(self.path)
        if meta.get("nms"):
            raise UsageError(f"{path} was exported with --nms (it returns final detections); predict and val need "
                             "the raw rows: export again without --nms")
        self.names = list(meta["names"])
        self.img_size = int(meta["img_size"])
        self.backbone = str(meta.get("backbone", self.path.stem))
        self.trained_on = meta.get("data")
        self.half = bool(meta.get("half"))
        self.layout = layout_named(meta.get("layout", "yoloswap"))
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        self.providers = self.session.get_providers()
        shape = self.session.get_inputs()[0].shape  # [B, 3, H, W]; str entries are dynamic axes
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.fixed_hw = tuple(shape[2:]) if all(isinstance(s, int) for s in shape[2:]) else None

    def infer(self, images01: torch.Tensor) -> torch.Tensor:
        x = (images01.detach().float().cpu() * self.layout.pixel_scale).numpy()
        out = run_in_chunks(x.astype(np.float16 if self.half else np.float32),
                            lambda chunk: self.session.run(None, {"images": chunk})[0], self.fixed_batch,
                            self.fixed_hw, self.path)
        return self.layout.from_file(out)


def run_in_chunks(x: np.ndarray, run: Callable[[np.ndarray], np.ndarray], fixed_batch: int | None,
                  fixed_hw: tuple[int, int] | None, path: Path) -> torch.Tensor:
    """Feed a file exported with a fixed batch in chunks of that batch (the last one padded), so any number of
    images works; a fixed input size must match the images given."""
    if fixed_hw is not None and tuple(x.shape[2:]) != tuple(fixed_hw):
        raise UsageError(f"{path} takes {fixed_hw[0]}x{fixed_hw[1]} images (exported without "
                         f"--dynamic); got {x.shape[2]}x{x.shape[3]}: use --img-size {fixed_hw[0]}")
    step = fixed_batch or len(x)
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start:start + step]
        n = len(chunk)
        if n < step:  # pad the last chunk of a fixed-batch file
            chunk = np.concatenate((chunk, np.zeros((step - n, *chunk.shape[1:]), chunk.dtype)))
        outputs.append(run(chunk)[:n])
    return torch.from_numpy(np.concatenate(outputs).astype(np.float32))


class TorchScriptRuntime(_RuntimeBase):
    """An exported ``.torchscript`` file (runs without yoloswap's model code)."""

    kind = "torchscript"

    def __init__(self, path: Path, device: torch.device | str = "cpu") -> None:
        from yoloswap.deploy.export import METADATA_KEY

        extra = {f"{METADATA_KEY}.json": ""}
        self.device = torch.device(device)
        try:
            self.module = torch.jit.load(str(path), map_location=self.device, _extra_files=extra)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0]})") from None
        if not extra[f"{METADATA_KEY}.json"]:
            raise CheckpointError(f"{path}: not exported by yoloswap (no '{METADATA_KEY}.json' inside)")
        import json

        meta = json.loads(extra[f"{METADATA_KEY}.json"])
        if meta.get("nms"):
            raise UsageError(f"{path} was exported with --nms; predict and val need it exported without --nms")
        self.names, self.img_size = list(meta["names"]), int(meta["img_size"])
        self.backbone = str(meta.get("backbone", Path(path).stem))
        self.trained_on = meta.get("data")
        self.dtype = torch.float16 if meta.get("half") else torch.float32
        self.layout = layout_named(meta.get("layout", "yoloswap"))

    @torch.no_grad()
    def infer(self, images01: torch.Tensor) -> torch.Tensor:
        out = self.module((images01.to(self.device) * self.layout.pixel_scale).to(self.dtype)).float().cpu()
        return self.layout.from_file(out)


class OpenVinoRuntime(_RuntimeBase):
    """An exported OpenVINO IR (``.xml`` + ``.bin``, or the folder holding them) on OpenVINO's CPU plugin."""

    kind = "openvino"

    def __init__(self, path: Path, device: torch.device | str = "cpu") -> None:
        from yoloswap.deploy.openvino import load_ir  # imported on use: the extra is optional

        self.ir = load_ir(Path(path))
        self.path, meta = self.ir.path, self.ir.metadata
        if meta.get("nms"):
            raise UsageError(f"{path} was exported with --nms; predict and val need it exported without --nms")
        self.names, self.img_size = list(meta["names"]), int(meta["img_size"])
        self.backbone = str(meta.get("backbone", self.path.stem))
        self.trained_on = meta.get("data")
        self.layout = layout_named(meta.get("layout", "yoloswap"))

    def infer(self, images01: torch.Tensor) -> torch.Tensor:
        x = (images01.detach().float().cpu() * self.layout.pixel_scale).numpy()
        return self.layout.from_file(run_in_chunks(x, lambda chunk: self.ir.compiled(chunk)[0], self.ir.fixed_batch,
                                                   self.ir.fixed_hw, self.path))


RUNTIMES: dict[str, Callable[[Path, torch.device | str], Runtime]] = {
    ".pt": TorchRuntime,
    ".onnx": OnnxRuntime,
    ".torchscript": TorchScriptRuntime,
    ".xml": OpenVinoRuntime,  # an OpenVINO IR (its .bin beside it), or a folder holding one
}


def load_runtime(path: Path | str, device: torch.device | str = "cpu") -> Runtime:
    """The runtime for a weights file, chosen by its suffix."""
    path = _exported_in_folder(Path(path))
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    loader = RUNTIMES.get(path.suffix.lower(), TorchRuntime)  # best.pt, last.pt or any torch.save file
    return loader(path, device)


def _exported_in_folder(path: Path) -> Path:
    """A folder holding one exported file (``best_openvino_model/``) stands for that file."""
    if not path.is_dir():
        return path
    found = [p for p in sorted(path.iterdir()) if p.suffix.lower() in RUNTIMES]
    if len(found) != 1:
        raise CheckpointError(f"{path}: a folder, expected one exported file ({', '.join(RUNTIMES)}) in it, "
                              f"found {len(found)}")
    return found[0]


def is_exported(path: Path | str) -> bool:
    """True for files a non-PyTorch runtime runs (predict/val route these through :func:`load_runtime`)."""
    path = Path(path)
    return path.is_dir() or (path.suffix.lower() in RUNTIMES and path.suffix.lower() != ".pt")
