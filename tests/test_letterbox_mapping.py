"""Boxes come back in the original image's pixels, in ``val`` and in ``predict``.

The images are not square, so the letterbox both scales and pads them. An "oracle" detector finds the one red
rectangle in whatever it is given and reports exactly that box, in the letterboxed pixels it saw; whatever is off
in undoing the letterbox (a sign, the padding axis, the ratio) moves the box away from where it is drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from yoloswap.data.dataset import DetectionDataset, build_dataloader
from yoloswap.data.formats import load_data_config
from yoloswap.deploy.predict import predict_images
from yoloswap.evaluation.loop import evaluate, to_original
from yoloswap.models.detector import Detector
from yoloswap.models.head import YOLOv5Head

SIZE = 64
RED = (230, 40, 40)
# name: (width, height, red rectangle x1, y1, x2, y2 in original pixels). The rectangles' edges land on whole
# letterboxed pixels (ratio 1/2 or 2/3), so the oracle sees exactly the drawn box.
IMAGES = {
    "wide": (128, 64, 20, 10, 60, 50),  # ratio 0.5, padded 16 px top and bottom
    "tall": (64, 128, 8, 70, 40, 110),  # ratio 0.5, padded 16 px left and right
    "odd": (96, 48, 12, 9, 54, 39),  # ratio 2/3, padded 16 px top and bottom
}


def write_data(root: Path) -> Path:
    """An Ultralytics-layout set whose val images are IMAGES (grey, one red box, class 0)."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for name, (w, h, x1, y1, x2, y2) in IMAGES.items():
            canvas = np.full((h, w, 3), 120, dtype=np.uint8)
            canvas[y1:y2, x1:x2] = RED
            Image.fromarray(canvas).save(root / "images" / split / f"{name}.png")
            line = f"0 {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}\n"
            (root / "labels" / split / f"{name}.txt").write_text(line)
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val",
                                    "names": ["red", "green", "blue"]}))
    return path


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p / (1 - p))


class RedBoxOracle(Detector):
    """A YOLOv5 detector (one level, stride 8, one 32×32 anchor) whose raw output encodes, through the real decode
    formula, the box of the red pixels in its input: xy = (2σ − 0.5 + cell)·8, wh = (2σ)²·32."""

    def __init__(self) -> None:
        head = YOLOv5Head([1], num_classes=3, strides=[8], anchors=[[[32.0, 32.0]]])
        super().__init__(nn.Identity(), nn.Identity(), head, mean=(0, 0, 0), std=(1, 1, 1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        n, _, h, w = images.shape
        raw = torch.full((n, 1, h // 8, w // 8, 8), -30.0)  # (N, na, H/8, W/8, 5+nc): nothing anywhere
        for i, img in enumerate(images):
            r, g, b = img
            ys, xs = torch.nonzero((r > 0.8) & (g < 0.3) & (b < 0.3), as_tuple=True)
            x1, y1, x2, y2 = xs.min().float(), ys.min().float(), xs.max().float() + 1, ys.max().float() + 1
            cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            gx, gy = int(cx // 8), int(cy // 8)
            cell = raw[i, 0, gy, gx]
            cell[0] = logit((cx / 8 - gx + 0.5) / 2)
            cell[1] = logit((cy / 8 - gy + 0.5) / 2)
            cell[2] = logit(torch.sqrt(bw / 32) / 2)
            cell[3] = logit(torch.sqrt(bh / 32) / 2)
            cell[4] = 12.0  # objectness ~1
            cell[5] = 12.0  # class 0 ("red")
        return [raw]


def original_box(name: str) -> list[float]:
    return [float(v) for v in IMAGES[name][2:]]


def test_to_original_removes_the_padding_then_the_scale():
    # A 200 × 100 (w × h) image letterboxed to 64: ratio 0.32, resized to 64 × 32, padded 16 px top and bottom.
    meta = {"ratio": 0.32, "pad": (0, 16), "orig_size": (100, 200)}
    dets = torch.tensor([[8.0, 20.0, 40.0, 44.0, 0.9, 2.0]])  # letterboxed pixels
    out = to_original(dets, meta)
    assert out[0].tolist() == pytest.approx([25.0, 12.5, 125.0, 87.5, 0.9, 2.0])
    assert dets[0, 0] == 8.0  # the input is left as it was
    # The padding is per axis: (left, top) = (16, 0) for a tall image.
    tall = to_original(torch.tensor([[20.0, 8.0, 44.0, 40.0, 0.5, 0.0]]),
                       {"ratio": 0.32, "pad": (16, 0), "orig_size": (200, 100)})
    assert tall[0, :4].tolist() == pytest.approx([12.5, 25.0, 87.5, 125.0])
    # A box reaching into the padding is clipped to the image.
    clipped = to_original(torch.tensor([[-4.0, 10.0, 70.0, 60.0, 0.5, 0.0]]), meta)
    assert clipped[0, :4].tolist() == pytest.approx([0.0, 0.0, 200.0, 100.0])


def test_evaluate_scores_boxes_in_original_pixels(tmp_path):
    data = load_data_config(write_data(tmp_path / "data"))
    loader = build_dataloader(DetectionDataset(data.val.samples, SIZE, augment=False), 2, False, 0, 0)
    out = evaluate(RedBoxOracle(), loader, data.names)

    assert out.metrics["map"] == pytest.approx(1.0, abs=1e-6)
    assert out.metrics["map50"] == pytest.approx(1.0, abs=1e-6)
    stems = {s.image_id: s.path.stem for s in data.val.samples}
    results = {stems[r["image_id"]]: r for r in out.accumulator.results()}
    assert set(results) == set(IMAGES)
    for name, r in results.items():
        x1, y1, x2, y2 = original_box(name)
        assert r["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-2), name  # COCO xywh
        assert r["score"] > 0.99


def test_predict_returns_boxes_in_original_pixels(tmp_path):
    write_data(tmp_path / "data")
    files = sorted((tmp_path / "data" / "images" / "val").glob("*.png"))
    results = list(predict_images(RedBoxOracle(), files, SIZE, torch.device("cpu"), batch_size=2))

    assert [p.name for p, _, _ in results] == [f.name for f in files]
    for path, image, dets in results:
        w, h = IMAGES[path.stem][:2]
        assert image.shape == (h, w, 3)  # the original image, for drawing on
        assert dets.shape == (1, 6)
        assert dets[0, :4].tolist() == pytest.approx(original_box(path.stem), abs=1e-2), path.stem
        assert dets[0, 5].item() == 0.0 and dets[0, 4].item() > 0.99
