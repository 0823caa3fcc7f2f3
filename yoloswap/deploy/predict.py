"""Inference on image files: letterbox, detect, map boxes back, draw them, and list them as JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from yoloswap import ops
from yoloswap.errors import DataError


def iter_sources(source: Path) -> list[Path]:
    """An image file, or every image in a folder (sorted); anything else (a data YAML, a video) is refused."""
    from yoloswap.data.images import IMAGE_SUFFIXES, is_image_file

    if source.is_file():
        if not is_image_file(source):
            raise DataError(f"--source {source}: not an image ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}); "
                            "give an image file or a folder of images")  # fmt: skip
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and is_image_file(p))
        if not files:
            raise DataError(f"--source {source}: no images (jpg, png, bmp, webp) in this folder")
        return files
    raise DataError(f"--source {source}: no such file or folder")


def predict_images(model, files: list[Path], img_size: int, device: torch.device, conf: float = ops.PREDICT_CONF,
                   iou: float = ops.PREDICT_IOU, batch_size: int = 8) -> Iterator[tuple[Path, object, torch.Tensor]]:
    """Yield ``(path, image HxWx3 uint8, dets (K, 6) in original pixels)``; unreadable files are skipped."""
    from yoloswap.data.images import read_image
    from yoloswap.data.transforms import pad_to_square, resize_long_side
    from yoloswap.data.transforms import to_original

    model.eval().to(device)
    batch: list = []

    def flush():
        x = torch.stack([torch.from_numpy(b[2].transpose(2, 0, 1).copy()) for b in batch]).to(device).float() / 255
        with torch.no_grad():
            dets = model.predict(x, conf=conf, iou=iou)
        for (path, image, _, meta), det in zip(batch, dets):
            yield path, image, to_original(det.cpu(), meta)
        batch.clear()

    skipped = 0
    for path in files:
        try:
            image = read_image(path)
        except DataError as exc:  # one line through logging (not warnings.warn, which quotes a source line)
            skipped += 1
            logging.getLogger(__name__).warning("warning: skipped %s", exc)
            continue
        resized, ratio = resize_long_side(image, img_size)
        padded, pad = pad_to_square(resized, img_size)
        batch.append((path, image, padded, {"ratio": ratio, "pad": pad, "orig_size": image.shape[:2]}))
        if len(batch) == batch_size:
            yield from flush()
    if batch:
        yield from flush()
    if files and skipped == len(files):
        raise DataError(f"--source: none of the {len(files)} image(s) could be read (e.g. {files[0]})")


def detections_json(path: Path, dets: torch.Tensor, names: list[str]) -> dict:
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
