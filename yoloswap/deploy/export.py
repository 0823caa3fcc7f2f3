"""Export a detector to a deployable file: ONNX, TorchScript or OpenVINO IR, with its metadata inside.

The exported graph is the head-independent contract (``Detector.infer``) behind a thin wrapper:

    images (B, 3, H, W) float, RGB, 0-255  ->  (B, P, 4 + nc)  rows [x1, y1, x2, y2 (input pixels), class scores]

so a deployment feeds raw pixels exactly like ``predict`` does (the backbone's mean/std are folded into the
model). With ``nms=True`` the graph also runs per-class NMS and returns (B, max_det, 6) rows
[x1, y1, x2, y2, score, cls], zero-padded. The file carries class names, strides, input size, head and yoloswap
version (ONNX ``metadata_props``, TorchScript ``_extra_files['yoloswap.json']``, OpenVINO ``rt_info``), so runtimes need nothing else.

Formats sit in one table (``FORMATS``): adding one is a function and a line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from yoloswap import __version__, ops
from yoloswap.deploy.layouts import LAYOUTS, layout_named, ultralytics_metadata
from yoloswap.errors import MissingExtraError, UsageError, extra_hint

EXPORT_EXTRA_HINT = extra_hint("export")
DEFAULT_OPSET = 17
METADATA_KEY = "yoloswap"  # ONNX metadata_props key / TorchScript extra file stem holding the JSON metadata
# ONNX Runtime against PyTorch on the same input, fp32 (measured on CSPDarknet, ConvNeXt and Swin detectors:
# largest difference ~1e-4 px on boxes, ~1e-6 on scores); boxes are in pixels, scores in [0, 1].
PARITY_ATOL_BOXES = 1e-2
PARITY_ATOL_SCORES = 1e-3


@dataclass(frozen=True)
class ExportSpec:
    """What to export: input size and batch, and the graph's options."""

    img_size: int = 640
    batch: int = 1
    dynamic: bool = False  # batch, height and width free (a static --nms graph keeps its batch fixed)
    half: bool = False
    opset: int = DEFAULT_OPSET
    nms: bool = False
    conf: float = ops.PREDICT_CONF
    iou: float = ops.PREDICT_IOU
    max_det: int = ops.MAX_DET
    layout: str = "yoloswap"  # deploy/layouts.py: yoloswap, ultralytics (YOLOv8 contract) or yolov5

    def check(self) -> None:
        layout_named(self.layout)
        if self.nms and self.layout != "yoloswap":
            raise UsageError(f"--nms is for --layout yoloswap; the {self.layout} layout gives the raw rows its "
                             "clients run NMS on")
        if self.img_size < 32 or self.img_size % 32:
            raise UsageError(f"--img-size must be a positive multiple of 32, got {self.img_size}")
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1, got {self.batch}")
        if not 11 <= self.opset <= 21:
            raise UsageError(f"--opset must be in [11, 21], got {self.opset}")
        if self.nms and self.dynamic:
            raise UsageError("--nms and --dynamic together are not supported: NMS is unrolled per image, "
                             "so the batch must be fixed (export with --batch N)")
        if self.max_det < 1:
            raise UsageError(f"--max-det must be at least 1, got {self.max_det}")


def export_spec(img_size: int, **given) -> ExportSpec:
    """An :class:`ExportSpec` from options by name (``None`` = not given: the default), checked at once; an
    unknown name is a one-line usage error. The command line and the Python API both build it here."""
    fields = {f.name for f in dataclasses.fields(ExportSpec)}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise UsageError(f"unknown export option(s) {unknown}: choose from {sorted(fields - {'img_size'})}")
    spec = ExportSpec(img_size=img_size, **{k: v for k, v in given.items() if v is not None})
    spec.check()
    return spec


class ExportWrapper(nn.Module):
    """0-255 RGB in, the inference contract out (and optionally NMS'd detections).

    Built only on ``model.infer`` (images in [0, 1] -> (B, P, 4 + nc)), never on a head's internals, so every
    head exports the same way.
    """

    def __init__(self, model: nn.Module, spec: ExportSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        layout = LAYOUTS[self.spec.layout]
        rows = self.model.infer(images / layout.pixel_scale)  # (B, P, 4 + nc)
        if not self.spec.nms:
            return layout.to_file(rows)
        return torch.stack([fixed_size_nms(r.float(), self.spec.conf, self.spec.iou, self.spec.max_det)
                            for r in rows]).to(rows.dtype)  # (B, max_det, 6)


def fixed_size_nms(rows: torch.Tensor, conf: float, iou: float, max_det: int) -> torch.Tensor:
    """(P, 4 + nc) -> (max_det, 6) [x1, y1, x2, y2, score, cls], best first, zero rows after the last detection.

    Each box keeps its best class (what deployment wants; validation keeps every class above ``conf``). Written
    with traceable ops only: torchvision's ``batched_nms`` becomes ONNX ``NonMaxSuppression`` (torchvision
    registers that symbolic), and the variable count is padded by concatenation instead of indexing.
    """
    import torchvision

    score, cls = rows[:, 4:].max(dim=1)  # (P,) each
    keep = score > conf
    boxes, score, cls = rows[:, :4][keep], score[keep], cls[keep]
    picked = torchvision.ops.batched_nms(boxes, score, cls, iou)[:max_det]  # best first
    dets = torch.cat((boxes[picked], score[picked, None], cls[picked, None].to(boxes.dtype)), dim=1)  # (K, 6)
    return torch.cat((dets, dets.new_zeros(max_det, 6)))[:max_det]


def metadata(model: nn.Module, names: list[str], spec: ExportSpec, backbone: str, trained_on: str | None = None) -> dict:
    """What a runtime needs to use the file without the checkpoint (``trained_on``: the data YAML, so that ``val``
    of the file scores the same data as ``val`` of its checkpoint)."""
    head = model.head
    return {
        "format": "yoloswap-export-v1",
        "yoloswap_version": __version__,
        "backbone": backbone,
        "head": str(getattr(head, "name", type(head).__name__)),
        "names": list(names),
        "data": trained_on,
        "strides": [int(s) for s in model.strides],
        "img_size": spec.img_size,
        "batch": None if spec.dynamic else spec.batch,
        "dynamic": spec.dynamic,
        "half": spec.half,
        "layout": spec.layout,
        "input": f"{LAYOUTS[spec.layout].input}, letterboxed with grey 114",
        "output": ("detections (B, max_det, 6) [x1, y1, x2, y2, score, cls]" if spec.nms
                   else LAYOUTS[spec.layout].output),
        "nms": {"conf": spec.conf, "iou": spec.iou, "max_det": spec.max_det} if spec.nms else None,
    }


def require_onnx() -> None:
    """Stop with the one line that says what to install when the export extras are missing."""
    missing = [name for name in ("onnx", "onnxruntime") if not _importable(name)]
    if missing:
        raise MissingExtraError(missing, "export")


def require_format(fmt: str) -> None:
    """The one-line "install X" error for a format whose extra is missing."""
    if fmt == "onnx":
        require_onnx()
    elif fmt == "openvino":
        from yoloswap.deploy.openvino import require_openvino

        require_openvino()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _example(spec: ExportSpec, device: torch.device) -> torch.Tensor:
    dtype = torch.float16 if spec.half else torch.float32
    return torch.full((spec.batch, 3, spec.img_size, spec.img_size), 114.0, dtype=dtype, device=device)


def export_onnx(wrapper: ExportWrapper, example: torch.Tensor, path: Path, meta: dict) -> Path:
    """Legacy (TorchScript-based) exporter: it handles every backbone family here, dynamo trips on some."""
    import warnings

    require_onnx()
    import onnx

    spec = wrapper.spec
    dynamic_axes = None
    if spec.dynamic:
        rows_axis = LAYOUTS[spec.layout].rows_axis
        dynamic_axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", rows_axis: "rows"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values in the graph are expected
        torch.onnx.export(wrapper, (example,), str(path), input_names=["images"], output_names=["output"],
                          opset_version=spec.opset, dynamic_axes=dynamic_axes, do_constant_folding=True,
                          dynamo=False)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    set_onnx_metadata(proto, meta)
    if spec.layout == "ultralytics":  # what YOLO("x.onnx") reads, beside yoloswap's own entry
        set_onnx_props(proto, ultralytics_metadata(meta))
    onnx.save(proto, str(path))
    return path


def set_onnx_metadata(proto, meta: dict) -> None:
    """Put ``meta`` (JSON) under ``metadata_props["yoloswap"]`` of an ONNX ModelProto, replacing any earlier one."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (METADATA_KEY, json.dumps(meta))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def set_onnx_props(proto, props: dict[str, str]) -> None:
    """Add (or replace) plain ``metadata_props`` entries of an ONNX ModelProto."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def export_torchscript(wrapper: ExportWrapper, example: torch.Tensor, path: Path, meta: dict) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})
    return path


def export_openvino(wrapper: ExportWrapper, example: torch.Tensor, path: Path, meta: dict) -> Path:
    """The IR converted from this ONNX graph in a temporary folder (one exporter for both files)."""
    import tempfile

    from yoloswap.deploy.openvino import onnx_to_ir  # imported on use: the extra is optional

    if wrapper.spec.half:
        raise UsageError("--half is not supported with --format openvino (export fp32; OpenVINO picks CPU precision)")
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = export_onnx(wrapper, example, Path(folder) / "model.onnx", meta)
        return onnx_to_ir(onnx_path, Path(path).with_suffix(".xml"), meta)


FORMATS: dict[str, tuple[str, Callable[[ExportWrapper, torch.Tensor, Path, dict], Path]]] = {
    "onnx": (".onnx", export_onnx),
    "torchscript": (".torchscript", export_torchscript),
    "openvino": (".xml", export_openvino),  # the IR: .xml graph + .bin weights
}


def export_model(model: nn.Module, names: list[str], backbone: str, fmt: str, spec: ExportSpec, path: Path,
                 device: torch.device | str = "cpu", trained_on: str | None = None) -> Path:
    """Write ``model`` (a Detector, or anything with ``infer``, ``head`` and ``strides``) as ``fmt`` to ``path``."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    spec.check()
    device = torch.device(device)
    if spec.half and device.type == "cpu":
        raise UsageError("--half needs a CUDA device (--device cuda): CPU kernels lack half-precision convolutions")
    require_format(fmt)
    model = model.eval().to(device)
    if spec.half:
        model = model.half()
    wrapper = ExportWrapper(model, spec).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        return FORMATS[fmt][1](wrapper, _example(spec, device), path, metadata(model, names, spec, backbone, trained_on))


def read_metadata(path: Path) -> dict:
    """The metadata an exported file carries (ONNX or TorchScript)."""
    path = Path(path)
    if path.suffix == ".xml" or path.is_dir():
        from yoloswap.deploy.openvino import load_ir

        return load_ir(path).metadata
    if path.suffix == ".onnx":
        require_onnx()
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        text = props.get(METADATA_KEY)
    else:
        extra = {f"{METADATA_KEY}.json": ""}
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        text = extra[f"{METADATA_KEY}.json"] or None
    if not text:
        from yoloswap.errors import CheckpointError

        raise CheckpointError(f"{path}: not exported by yoloswap (no '{METADATA_KEY}' metadata)")
    return json.loads(text)


def _run_exported(path: Path):
    """A function 0-255 float32 (B, 3, H, W) -> the file's raw output, for the parity check (ONNX or OpenVINO)."""
    if Path(path).suffix == ".xml":
        from yoloswap.deploy.openvino import load_ir

        compiled = load_ir(path).compiled
        return lambda x: compiled(x)[0]
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})[0]


def check_parity(model: nn.Module, path: Path, spec: ExportSpec, seed: int = 0) -> dict:
    """Run the exported file (ONNX Runtime for .onnx, OpenVINO for .xml) on random 0-255 images and compare with
    PyTorch's ``infer``. Raises ``CheckpointError`` when a difference exceeds the stated tolerance.
    """
    import numpy as np

    from yoloswap.errors import CheckpointError

    runtime = "OpenVINO" if Path(path).suffix == ".xml" else "ONNX Runtime"
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(spec.batch, 3, spec.img_size, spec.img_size, generator=generator) * 255
    device = next(model.parameters()).device
    with torch.no_grad():
        x_in = x / 255 * LAYOUTS[spec.layout].pixel_scale  # what a client of the layout feeds
        ref = ExportWrapper(model, spec).eval()(x_in.to(device)).float().cpu()
    got = torch.from_numpy(np.asarray(_run_exported(path)(x_in.numpy())).astype(np.float32))
    if not spec.nms:  # compare as rows, whatever axis order the layout writes
        ref, got = LAYOUTS[spec.layout].from_file(ref), LAYOUTS[spec.layout].from_file(got)
    ref, got = ref.numpy(), got.numpy()
    if got.shape != ref.shape:
        raise CheckpointError(f"{path}: {runtime} output shape {got.shape} differs from PyTorch's {ref.shape}")
    score_cols = slice(4, 5) if spec.nms else slice(4, None)
    report = {
        "runtime": runtime,
        "max_abs_boxes": float(np.abs(got[..., :4] - ref[..., :4]).max(initial=0.0)),
        "max_abs_scores": float(np.abs(got[..., score_cols] - ref[..., score_cols]).max(initial=0.0)),
        "atol_boxes": PARITY_ATOL_BOXES,
        "atol_scores": PARITY_ATOL_SCORES,
    }
    if report["max_abs_boxes"] > PARITY_ATOL_BOXES or report["max_abs_scores"] > PARITY_ATOL_SCORES:
        raise CheckpointError(f"{path}: {runtime} differs from PyTorch beyond tolerance (boxes "
                              f"{report['max_abs_boxes']:.3g} px, scores {report['max_abs_scores']:.3g})")
    return report


check_onnx_parity = check_parity  # the name callers used before OpenVINO
