"""Tiny on-disk data sets in the layouts users have, drawn by the tests (coloured boxes on noise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(230, 40, 40), (40, 200, 60), (50, 80, 230)]


def draw(rng: np.random.Generator, size: int, n: int) -> tuple[Image.Image, list[tuple[int, float, float, float, float]]]:
    """An image with ``n`` filled rectangles; returns it and boxes as (cls, x1, y1, x2, y2) pixels."""
    canvas = rng.integers(90, 140, size=(size, size, 3), dtype=np.uint8)
    boxes = []
    for _ in range(n):
        cls = int(rng.integers(0, len(COLOURS)))
        w, h = rng.integers(size // 5, size // 2, size=2)
        x1, y1 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        canvas[y1 : y1 + h, x1 : x1 + w] = COLOURS[cls]
        boxes.append((cls, float(x1), float(y1), float(x1 + w), float(y1 + h)))
    return Image.fromarray(canvas), boxes


def ultralytics_set(root: Path, names_as_dict: bool, n_train: int = 6, n_val: int = 3, size: int = 64) -> Path:
    """images/{train,val} + labels/{train,val}; names as a list or an {id: name} mapping; val given as a .txt list."""
    rng = np.random.default_rng(1)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(count):
            img, boxes = draw(rng, size, n=1 + i % 2)
            img.save(root / "images" / split / f"{i}.png")
            lines = [f"{c} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} {(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}"
                     for c, x1, y1, x2, y2 in boxes]
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(f"images/val/{i}.png" for i in range(n_val)) + "\n")
    names = {0: "red", 1: "green", 2: "blue"} if names_as_dict else ["red", "green", "blue"]
    data = {"path": str(root), "train": "images/train", "val": "val.txt", "names": names}
    path = root / "data.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def coco_set(root: Path, n_train: int = 6, n_val: int = 3, size: int = 64) -> Path:
    """COCO JSON with sparse category ids (3, 7, 11), one crowd box and one image without objects per split."""
    rng = np.random.default_rng(2)
    ids = [3, 7, 11]
    for split, count in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True)
        images, anns = [], []
        for i in range(count):
            n = 0 if i == 0 else 1 + i % 2
            img, boxes = draw(rng, size, n)
            name = f"{split}_{i}.jpg"
            img.save(root / split / name, quality=95)
            images.append({"id": 100 + i, "file_name": name, "width": size, "height": size})
            for c, x1, y1, x2, y2 in boxes:
                anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": ids[c],
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        anns.append({"id": len(anns) + 1, "image_id": 101, "category_id": ids[0], "bbox": [0, 0, 20, 20],
                     "area": 400, "iscrowd": 1})
        doc = {"images": images, "annotations": anns,
               "categories": [{"id": k, "name": n} for k, n in zip(ids, ["red", "green", "blue"])]}
        (root / f"{split}.json").write_text(json.dumps(doc))
    path = root / "data.yaml"
    path.write_text(
        f"format: coco\npath: {root}\n"
        "train: {images: train, annotations: train.json}\nval: {images: val, annotations: val.json}\n"
    )
    return path
