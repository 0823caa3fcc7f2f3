"""Export layouts: the input and output contract an exported file speaks, so that existing YOLO deployments read it.

    yoloswap     images 0-255 RGB  ->  (B, P, 4 + nc)      x1, y1, x2, y2 (input pixels), class scores
    ultralytics  images 0-1 RGB    ->  (B, 4 + nc, P)      cx, cy, w, h (input pixels), class scores
                 (plus Ultralytics' metadata_props, read by ``YOLO("x.onnx")`` with ``ast.literal_eval``)
    yolov5       images 0-1 RGB    ->  (B, P, 5 + nc)      cx, cy, w, h (input pixels), objectness, class scores

Every layout is a thin function around the head-independent rows of ``Detector.infer``, so any backbone and both
heads export in all three; the backbone's mean/std stay folded into the graph. The ``yolov5`` rows carry
objectness 1 and the final class scores (for the anchor-based head those are objectness × class already), so a
client's ``obj × cls`` is yoloswap's score. ``from_file`` turns a file's output back into rows, which is how
yoloswap's own runtimes (val, predict, benchmark) read any layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from yoloswap import ops


@dataclass(frozen=True)
class ExportLayout:
    name: str
    pixel_scale: float  # the value of a white pixel the graph takes: 255 (0-255 input) or 1 (0-1 input)
    to_file: Callable[[torch.Tensor], torch.Tensor]  # rows (B, P, 4 + nc) -> the file's output
    from_file: Callable[[torch.Tensor], torch.Tensor]  # the file's output -> rows (B, P, 4 + nc)
    rows_axis: int  # the output axis that runs over candidate boxes (a dynamic axis)
    input: str
    output: str


def _same(rows: torch.Tensor) -> torch.Tensor:
    return rows


def _to_ultralytics(rows: torch.Tensor) -> torch.Tensor:
    return torch.cat((ops.xyxy2xywh(rows[..., :4]), rows[..., 4:]), dim=-1).transpose(1, 2)  # (B, 4+nc, P)


def _from_ultralytics(out: torch.Tensor) -> torch.Tensor:
    out = out.transpose(1, 2)  # (B, P, 4+nc)
    return torch.cat((ops.xywh2xyxy(out[..., :4]), out[..., 4:]), dim=-1)


def _to_yolov5(rows: torch.Tensor) -> torch.Tensor:
    objectness = torch.ones_like(rows[..., :1])
    return torch.cat((ops.xyxy2xywh(rows[..., :4]), objectness, rows[..., 4:]), dim=-1)  # (B, P, 5+nc)


def _from_yolov5(out: torch.Tensor) -> torch.Tensor:
    return torch.cat((ops.xywh2xyxy(out[..., :4]), out[..., 5:] * out[..., 4:5]), dim=-1)


LAYOUTS: dict[str, ExportLayout] = {
    "yoloswap": ExportLayout("yoloswap", 255.0, _same, _same, 1, "images (B, 3, H, W) float RGB 0-255",
                             "rows (B, P, 4 + nc) [x1, y1, x2, y2, class scores] before NMS"),
    "ultralytics": ExportLayout("ultralytics", 1.0, _to_ultralytics, _from_ultralytics, 2,
                                "images (B, 3, H, W) float RGB 0-1",
                                "(B, 4 + nc, P) [cx, cy, w, h, class scores] before NMS (YOLOv8 contract)"),
    "yolov5": ExportLayout("yolov5", 1.0, _to_yolov5, _from_yolov5, 1, "images (B, 3, H, W) float RGB 0-1",
                           "(B, P, 5 + nc) [cx, cy, w, h, objectness, class scores] before NMS (YOLOv5 contract)"),
}


def layout_named(name: str) -> ExportLayout:
    from yoloswap.errors import UsageError, suggestion

    if name not in LAYOUTS:
        raise UsageError(f"--layout {name!r}: choose one of {', '.join(LAYOUTS)}{suggestion(name, list(LAYOUTS))}")
    return LAYOUTS[name]


def ultralytics_metadata(meta: dict) -> dict[str, str]:
    """The ``metadata_props`` Ultralytics' ``AutoBackend`` reads from an ONNX file, each a Python literal."""
    size = int(meta["img_size"])
    return {
        "description": f"yoloswap {meta['backbone']} detector ({meta['head']} head)",
        "author": "yoloswap",
        "version": str(meta["yoloswap_version"]),
        "stride": str(max(meta["strides"])),
        "task": "detect",
        "batch": str(meta["batch"] or 1),
        "imgsz": repr([size, size]),
        "names": repr(dict(enumerate(meta["names"]))),
        "args": repr({"batch": meta["batch"] or 1, "half": bool(meta["half"]), "dynamic": bool(meta["dynamic"]),
                      "int8": False, "nms": False}),
        "channels": "3",
        "end2end": "False",
    }
