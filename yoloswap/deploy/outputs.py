"""What predict writes, frame by frame, so that a stream stopped by Ctrl-C or by a drop keeps everything so far.

- images: ``<stem>.jpg`` annotated, and ``predictions.json`` (a list, one record per image, written at close);
- a capture (video, webcam, stream): ``<stem>.mp4`` annotated at the source's size and frame rate, and
  ``predictions.jsonl``, one line per frame with its index and time, flushed as it goes;
- ``--save-txt``: ``labels/<stem>.txt`` (``<stem>_<frame>.txt`` for captures), YOLO lines ``cls cx cy w h``
  normalised to the picture, plus ``conf`` with ``--save-conf``; only pictures with detections get a file;
- ``--save-crop``: ``crops/<class>/<stem>_<k>.jpg``.

Drawing is handed in (``draw``: the CLI passes reports/plots.draw_detections), since deploy never imports reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from yoloswap.deploy.predict import detections_json, write_predictions
from yoloswap.deploy.sources import Frame, Source


@dataclass(frozen=True)
class OutputOptions:
    save_images: bool = True  # annotated images / video
    save_txt: bool = False
    save_conf: bool = False
    save_crop: bool = False
    hide_labels: bool = False
    hide_conf: bool = False


def yolo_lines(dets: torch.Tensor, width: int, height: int, with_conf: bool = False) -> list[str]:
    """(K, 6) pixel boxes -> ``cls cx cy w h [conf]`` lines, normalised to the picture (what labelling tools read)."""
    lines = []
    for x1, y1, x2, y2, score, cls in dets.tolist():
        fields = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
        text = f"{int(cls)} " + " ".join(f"{min(max(v, 0.0), 1.0):.6f}" for v in fields)
        lines.append(text + (f" {score:.4f}" if with_conf else ""))
    return lines


class PredictionWriter:
    """Writes each (frame, detections) as it comes; ``close()`` finishes the files (call it in a ``finally``)."""

    def __init__(self, folder: Path, names: list[str], source: Source, options: OutputOptions,
                 draw: Callable[..., object]) -> None:
        self.folder, self.names, self.source, self.options, self.draw = Path(folder), names, source, options, draw
        self.folder.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = []
        self.frames = 0
        self.detections = 0
        self._video = None
        self._lines = (self.folder / "predictions.jsonl").open("w") if source.is_capture else None

    @property
    def predictions_path(self) -> Path:
        return self.folder / ("predictions.jsonl" if self.source.is_capture else "predictions.json")

    @property
    def video_path(self) -> Path:
        return self.folder / f"{self.source.stem}.mp4"

    def _stem(self, frame: Frame) -> str:
        return f"{frame.name}_{frame.index}" if self.source.is_capture else frame.name

    def add(self, frame: Frame, dets: torch.Tensor) -> None:
        self.frames += 1
        self.detections += len(dets)
        if self.source.is_capture:
            record = {"frame": frame.index, "time_s": frame.time_s,
                      **detections_json(self.source.text, dets, self.names)}
            self._lines.write(json.dumps(record) + "\n")
            self._lines.flush()
        else:
            self.records.append(detections_json(frame.path or frame.name, dets, self.names))
        if self.options.save_images:
            self._save_picture(frame, dets)
        if self.options.save_txt and len(dets):
            height, width = frame.image.shape[:2]
            labels = self.folder / "labels" / f"{self._stem(frame)}.txt"
            labels.parent.mkdir(exist_ok=True)
            labels.write_text("\n".join(yolo_lines(dets, width, height, self.options.save_conf)) + "\n")
        if self.options.save_crop:
            self._save_crops(frame, dets)

    def _save_picture(self, frame: Frame, dets: torch.Tensor) -> None:
        names = [""] * len(self.names) if self.options.hide_labels else self.names
        show_scores = not (self.options.hide_conf or self.options.hide_labels)
        picture = self.draw(frame.image, dets, names, show_scores=show_scores)
        if not self.source.is_capture:
            picture.save(self.folder / f"{frame.name}.jpg")
            return
        import cv2

        array = cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR)
        if self._video is None:
            height, width = array.shape[:2]
            self._video = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"),
                                          float(self.source.fps or 25.0), (width, height))
        self._video.write(array)

    def _save_crops(self, frame: Frame, dets: torch.Tensor) -> None:
        from PIL import Image

        for k, (x1, y1, x2, y2, _score, cls) in enumerate(dets.tolist()):
            x1, y1, x2, y2 = (int(round(v)) for v in (x1, y1, x2, y2))
            if x2 <= x1 or y2 <= y1:
                continue
            name = self.names[int(cls)] if int(cls) < len(self.names) else str(int(cls))
            path = self.folder / "crops" / name / f"{self._stem(frame)}_{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame.image[y1:y2, x1:x2]).save(path)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
        if self._lines is not None:
            self._lines.close()
            self._lines = None
        if not self.source.is_capture:
            write_predictions(self.folder, self.records)
