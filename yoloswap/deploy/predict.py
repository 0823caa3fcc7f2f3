"""Inference on a predict source (deploy/sources.py): letterbox, detect in batches, map boxes back to the picture.

Image files are decoded and letterboxed in DataLoader workers while the model runs on the previous batch; a
capture's frames come from its reader thread. The time per image is split as Ultralytics prints it: pre-process
(decode excluded, letterbox + tensor), inference (the runtime's ``infer``) and post-process (NMS, class filter,
boxes back to the original pixels). Any runtime works (deploy/runtimes.py): a ``.pt``, ``.onnx``, ``.xml``...
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from yoloswap import ops
from yoloswap.deploy.sources import Frame, Source, open_source
from yoloswap.errors import DataError


@dataclass(frozen=True)
class PredictSettings:
    """How to detect: size, thresholds, class filter and batching (defaults live in ops.py)."""

    img_size: int
    conf: float = ops.PREDICT_CONF
    iou: float = ops.PREDICT_IOU
    max_det: int = ops.MAX_DET
    classes: tuple[int, ...] | None = None  # keep only these class ids
    batch_size: int = 8  # images per forward pass (a live source runs one frame at a time: latency first)
    workers: int = 2  # DataLoader processes decoding image files


@dataclass
class Speed:
    """Milliseconds spent per stage, summed over ``images``."""

    pre_ms: float = 0.0
    infer_ms: float = 0.0
    post_ms: float = 0.0
    images: int = 0
    shape: tuple[int, ...] = field(default=())

    def per_image(self) -> dict:
        n = max(self.images, 1)
        return {"preprocess_ms": self.pre_ms / n, "inference_ms": self.infer_ms / n, "postprocess_ms": self.post_ms / n}

    def line(self) -> str:
        t = self.per_image()
        return (f"Speed: {t['preprocess_ms']:.1f}ms pre-process, {t['inference_ms']:.1f}ms inference, "
                f"{t['postprocess_ms']:.1f}ms post-process per image at shape {self.shape}")


def iter_sources(source: Path | str) -> list[Path]:
    """The image files a source names (kept for callers that want only files); captures are refused."""
    found = open_source(source)
    if found.is_capture:
        raise DataError(f"--source {source}: a {found.kind}, not images")
    return found.files


def letterbox_frame(image: np.ndarray, size: int) -> tuple[torch.Tensor, dict]:
    """HxWx3 uint8 -> (3, size, size) uint8 tensor, grey-padded, and the meta that maps boxes back."""
    from yoloswap.data.transforms import pad_to_square, resize_long_side

    resized, ratio = resize_long_side(image, size)
    padded, pad = pad_to_square(resized, size)
    return torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1))), {
        "ratio": ratio, "pad": pad, "orig_size": image.shape[:2]}


class _ImageFiles(torch.utils.data.Dataset):
    """Decoded and letterboxed in a worker; an unreadable file comes back as its error text (logged by predict)."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from yoloswap.data.images import read_image

        path = self.files[i]
        try:
            image = read_image(path)
        except DataError as exc:
            return path, None, str(exc), None, 0.0
        start = time.perf_counter()
        tensor, meta = letterbox_frame(image, self.size)
        return path, image, tensor, meta, (time.perf_counter() - start) * 1000


def _file_batches(source: Source, settings: PredictSettings, speed: Speed) -> Iterator[list[tuple[Frame, torch.Tensor, dict]]]:
    files = source.files
    loader = torch.utils.data.DataLoader(_ImageFiles(files, settings.img_size), batch_size=settings.batch_size,
                                         num_workers=min(settings.workers, len(files)), collate_fn=list)
    skipped = 0
    for items in loader:
        batch = []
        for path, image, tensor, meta, pre_ms in items:
            if image is None:  # one line through logging (not warnings.warn, which quotes a source line)
                skipped += 1
                logging.getLogger(__name__).warning("warning: skipped %s", tensor)
                continue
            speed.pre_ms += pre_ms
            batch.append((Frame(image, path.stem, 0, None, path), tensor, meta))
        if batch:
            yield batch
    if files and skipped == len(files):
        raise DataError(f"--source: none of the {len(files)} image(s) could be read (e.g. {files[0]})")


def _capture_batches(source: Source, settings: PredictSettings, speed: Speed) -> Iterator[list[tuple[Frame, torch.Tensor, dict]]]:
    size = 1 if source.live else settings.batch_size
    batch = []
    for frame in source.frames():
        start = time.perf_counter()
        tensor, meta = letterbox_frame(frame.image, settings.img_size)
        speed.pre_ms += (time.perf_counter() - start) * 1000
        batch.append((frame, tensor, meta))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _detect(model, tensors: list[torch.Tensor], metas: list[dict], settings: PredictSettings,
            speed: Speed) -> list[torch.Tensor]:
    from yoloswap.data.transforms import to_original

    start = time.perf_counter()
    x = torch.stack(tensors).float().div_(255)
    speed.pre_ms += (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    with torch.no_grad():
        rows = model.infer(x).float().cpu()  # (B, P, 4 + nc)
    speed.infer_ms += (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    if settings.classes is not None:  # filter before NMS, so --max-det counts kept classes only
        keep = torch.zeros(rows.shape[-1] - 4, dtype=torch.bool)
        keep[[c for c in settings.classes if c < len(keep)]] = True
        rows = torch.cat((rows[..., :4], rows[..., 4:] * keep), dim=-1)
    dets = [to_original(d, m) for d, m in zip(ops.postprocess(rows, settings.conf, settings.iou, settings.max_det), metas)]
    speed.post_ms += (time.perf_counter() - start) * 1000
    speed.images += len(x)
    speed.shape = tuple(x.shape)
    return dets


def predict_source(model, source: Source, settings: PredictSettings,
                   speed: Speed | None = None) -> Iterator[tuple[Frame, torch.Tensor]]:
    """Yield ``(frame, dets (K, 6) [x1, y1, x2, y2, score, cls] in the frame's pixels)`` for every picture."""
    speed = speed if speed is not None else Speed()
    model.eval()
    batches = _capture_batches if source.is_capture else _file_batches
    for batch in batches(source, settings, speed):
        frames, tensors, metas = zip(*batch)
        yield from zip(frames, _detect(model, list(tensors), list(metas), settings, speed))


def predict_images(model, files: list[Path], img_size: int, device: torch.device, conf: float = ops.PREDICT_CONF,
                   iou: float = ops.PREDICT_IOU, batch_size: int = 8) -> Iterator[tuple[Path, object, torch.Tensor]]:
    """Yield ``(path, image HxWx3 uint8, dets (K, 6) in original pixels)``; unreadable files are skipped."""
    model.eval().to(device)
    settings = PredictSettings(img_size, conf, iou, batch_size=batch_size, workers=0)
    for frame, dets in predict_source(model, Source("list", "files", files=list(files)), settings):
        yield frame.path, frame.image, dets


def detections_json(path: Path | str, dets: torch.Tensor, names: list[str]) -> dict:
    return {
        "image": str(path),
        "detections": [
            {"box": [round(float(v), 2) for v in d[:4]], "score": round(float(d[4]), 4), "class_id": int(d[5]),
             "class": names[int(d[5])] if int(d[5]) < len(names) else str(int(d[5]))}
            for d in dets
        ],
    }


def write_predictions(out: Path, records: list[dict]) -> Path:
    path = out / "predictions.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(path)
    return path


def parse_classes(text: str | None, names: list[str]) -> tuple[int, ...] | None:
    """``--classes person,2`` -> (0, 2): names or indices, comma-separated; unknown ones are a one-line error."""
    from yoloswap.errors import UsageError

    if not text:
        return None
    ids = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        if token.isdigit() and int(token) < len(names):
            ids.append(int(token))
        elif token in names:
            ids.append(names.index(token))
        else:
            raise UsageError(f"--classes {token!r}: not a class of this model (0-{len(names) - 1} or one of "
                             f"{', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
    return tuple(sorted(set(ids)))
