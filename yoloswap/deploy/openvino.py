"""OpenVINO (``yoloswap[openvino]``): write an IR (``.xml`` + ``.bin``) from the ONNX graph, and read one back.

The IR is converted from the same ONNX graph ``export --format onnx`` writes (that exporter handles every
backbone family here), so the two files compute the same thing; yoloswap's metadata (export.metadata) travels in
the IR's ``rt_info`` under ``yoloswap``. The format (export.FORMATS) and the runtime (runtimes.RUNTIMES) call
these helpers; this module imports neither, so the package's import graph stays a tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from yoloswap.errors import CheckpointError, UsageError

OPENVINO_EXTRA_HINT = 'pip install "yoloswap[openvino]"'
RT_INFO_KEY = "yoloswap"
# f32: on CPUs with bf16 units (this AMD EPYC) the plugin's default precision moves ConvNeXt boxes by 0.02 px, past
# the ONNX parity tolerance; a deployment that accepts that can compile the IR itself
COMPILE_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def require_openvino() -> None:
    import importlib.util

    missing = [n for n in ("openvino", "onnx") if importlib.util.find_spec(n) is None]
    if missing:
        raise UsageError(f"{' and '.join(missing)} not installed; install the OpenVINO extra: {OPENVINO_EXTRA_HINT}")


def openvino_available() -> bool:
    try:
        require_openvino()
    except UsageError:
        return False
    return True


def onnx_to_ir(onnx_path: Path, xml_path: Path, meta: dict) -> Path:
    """Convert an ONNX file to ``xml_path`` (its ``.bin`` beside it), fp32 weights, with ``meta`` inside."""
    require_openvino()
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    model.set_rt_info(json.dumps(meta), [RT_INFO_KEY])
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path


def resolve_ir(path: Path) -> Path:
    """A ``.xml`` file, or a folder holding exactly one (``best_openvino_model/``)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if len(found) != 1:
            raise CheckpointError(f"{path}: expected one OpenVINO .xml in this folder, found {len(found)}")
        return found[0]
    return path


@dataclass
class LoadedIR:
    path: Path
    compiled: object  # openvino.CompiledModel: compiled(x)[0] is the output
    metadata: dict
    fixed_batch: int | None
    fixed_hw: tuple[int, int] | None


def load_ir(path: Path) -> LoadedIR:
    """Read and compile an IR for the CPU; a file not written by yoloswap is a one-line CheckpointError."""
    require_openvino()
    import openvino as ov

    path = resolve_ir(path)
    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # openvino raises its own exception types
        raise CheckpointError(f"{path}: OpenVINO cannot read it ({str(exc).splitlines()[0]})") from None
    try:
        meta = json.loads(str(model.get_rt_info([RT_INFO_KEY]).astype(str)))
    except Exception:
        raise CheckpointError(f"{path}: not exported by yoloswap (no '{RT_INFO_KEY}' rt_info)") from None
    shape = model.inputs[0].get_partial_shape()
    batch = shape[0].get_length() if shape[0].is_static else None
    hw = (shape[2].get_length(), shape[3].get_length()) if shape[2].is_static and shape[3].is_static else None
    return LoadedIR(path, core.compile_model(model, "CPU", COMPILE_CONFIG), meta, batch, hw)
