"""Data sets as users have them: Ultralytics YAML + txt labels, COCO JSON, broken files, and the label cache."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from yoloswap.data import images
from yoloswap.data.formats import DataWarning, label_path_for, load_data_config
from yoloswap.data.images import read_image
from yoloswap.errors import DataError


def write_image(
    path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB", orientation: int | None = None
) -> Path:
    """A small image of ``size`` (w, h) as stored on disk; ``orientation`` sets the EXIF tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = {"RGB": (200, 30, 30), "L": 128, "RGBA": (10, 200, 10, 128)}[mode]
    im = Image.new(mode, size, colour)
    kwargs = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    im.save(path, **kwargs)
    return path


def write_labels(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_yaml(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def yolo_set(root: Path) -> Path:
    """root/images/{train,val}/*.jpg with labels; one training image has no label file (background)."""
    write_image(root / "images/train/a.jpg", (40, 20))
    write_labels(root / "labels/train/a.txt", "0 0.5 0.5 0.5 0.5\n1 0.25 0.75 0.1 0.2\n")
    write_image(root / "images/train/b.png", (32, 32))  # no label file: background
    write_image(root / "images/val/c.jpg", (20, 20))
    write_labels(root / "labels/val/c.txt", "1 0.5 0.5 1.0 1.0\n")
    return write_yaml(root / "data.yaml", {"train": "images/train", "val": "images/val", "names": ["cat", "dog"]})


# ------------------------------------------------------------------------------------------------ Ultralytics


def test_ultralytics_folders_with_names_list(tmp_path: Path) -> None:
    cfg = load_data_config(yolo_set(tmp_path))
    assert cfg.names == ("cat", "dog")
    assert cfg.category_ids is None
    a, b = cfg.train.samples
    assert (a.path.name, a.width, a.height) == ("a.jpg", 40, 20)
    # Normalised cx cy w h → pixel x1 y1 x2 y2 of the 40x20 image.
    np.testing.assert_allclose(a.boxes, [[10, 5, 30, 15], [8, 13, 12, 17]], atol=1e-4)
    assert a.classes.tolist() == [0, 1] and a.classes.dtype == np.int64
    assert a.crowd.tolist() == [False, False]
    assert b.boxes.shape == (0, 4) and b.classes.shape == (0,)
    assert [s.image_id for s in cfg.train.samples] == [0, 1]
    np.testing.assert_allclose(cfg.val.samples[0].boxes, [[0, 0, 20, 20]])


def test_ultralytics_txt_lists_names_dict_and_relative_path(tmp_path: Path) -> None:
    root = tmp_path / "datasets/pets"
    write_image(root / "images/one.jpg", (10, 10))
    write_labels(root / "labels/one.txt", "2 0.5 0.5 0.2 0.2\n")
    write_image(root / "images/two.jpg", (10, 10))
    (root / "train.txt").write_text("./images/one.jpg\n" + f"{root / 'images/two.jpg'}\n")
    (root / "val.txt").write_text("images/two.jpg\n")
    source = write_yaml(
        tmp_path / "configs/pets.yaml",
        {"path": "../datasets/pets", "train": "train.txt", "val": "val.txt", "names": {0: "a", 1: "b", 2: "c"}},
    )
    cfg = load_data_config(source)
    assert cfg.names == ("a", "b", "c")
    assert cfg.root == root.resolve()
    assert [s.path.name for s in cfg.train.samples] == ["one.jpg", "two.jpg"]
    assert cfg.train.samples[0].classes.tolist() == [2]
    assert [s.path.name for s in cfg.val.samples] == ["two.jpg"]


def test_label_path_replaces_the_last_images_folder() -> None:
    assert label_path_for(Path("/d/images/x/images/a.JPG")) == Path("/d/images/x/labels/a.txt")
    assert label_path_for(Path("/d/train/a.png")) == Path("/d/train/a.txt")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("0 0.5 0.5 0.2\n", 1, "expected 5 fields"),
        ("0 0.5 0.5 0.2 0.2\n0 0.5 x 0.2 0.2\n", 2, "'x' is not a number"),
        ("\n2 0.5 0.5 0.2 0.2\n", 2, "class 2 is not in names"),
        ("0.5 0.5 0.5 0.2 0.2\n", 1, "class 0.5 is not in names"),
        ("0 1.2 0.5 0.2 0.2\n", 1, "cx=1.2 is outside [0, 1]"),
        ("0 0.5 -0.1 0.2 0.2\n", 1, "cy=-0.1 is outside [0, 1]"),
        ("0 0.5 0.5 0 0.2\n", 1, "width and height must be > 0"),
    ],
)
def test_malformed_label_line_names_file_and_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    source = yolo_set(tmp_path)
    label = write_labels(tmp_path / "labels/train/a.txt", text)
    with pytest.raises(DataError) as err:
        load_data_config(source).train  # noqa: B018 - scanning the split is what raises
    assert str(err.value).startswith(f"{label}:{line}: ")
    assert problem in str(err.value)


def test_coordinates_a_hair_outside_the_image_are_clipped(tmp_path: Path) -> None:
    source = yolo_set(tmp_path)
    write_labels(tmp_path / "labels/train/a.txt", "0 1.0005 0.5 0.2 0.2\n")
    box = load_data_config(source).train.samples[0].boxes[0]
    assert box[2] == 40.0 and 35.9 < box[0] < 36.1


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"val": "images/val", "names": ["cat"]}, "'train' is missing"),
        ({"train": "images/train", "val": "images/nope", "names": ["cat"]}, "'val'"),
        ({"train": "images/train", "val": "images/val"}, "'names' is missing"),
        ({"path": "missing", "train": "images/train", "val": "images/val", "names": ["a"]}, "'path'"),
        ({"train": "images/train", "val": "images/val", "names": {1: "a"}}, "'names'"),
        ({"format": "pascal", "train": "images/train", "val": "images/val", "names": ["a"]}, "'format'"),
    ],
)
def test_yaml_problems_name_file_and_field(tmp_path: Path, doc: dict, field: str) -> None:
    yolo_set(tmp_path)
    source = write_yaml(tmp_path / "bad.yaml", doc)
    with pytest.raises(DataError) as err:
        load_data_config(source)
    assert str(err.value).startswith(f"{source}: ")
    assert field in str(err.value)


def test_missing_yaml_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data YAML not found"):
        load_data_config(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------------------------------ images


def test_corrupt_images_are_skipped_counted_and_warned(tmp_path: Path) -> None:
    source = yolo_set(tmp_path)
    (tmp_path / "images/train/garbage.jpg").write_bytes(b"not an image at all")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "images/train/cut.jpg")
    whole = (tmp_path / "images/train/cut.jpg").read_bytes()
    (tmp_path / "images/train/cut.jpg").write_bytes(whole[: len(whole) // 2])  # a download cut short
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = load_data_config(source).train
    assert [s.path.name for s in split.samples] == ["a.jpg", "b.png"]
    assert len(split.skipped) == 2
    assert any("cut.jpg" in s and "truncated" in s for s in split.skipped)
    assert any("garbage.jpg" in s for s in split.skipped)
    assert any(issubclass(w.category, DataWarning) and "skipped 2" in str(w.message) for w in caught)


def test_exif_rotated_jpeg_uses_the_oriented_size(tmp_path: Path) -> None:
    source = yolo_set(tmp_path)
    path = write_image(tmp_path / "images/train/a.jpg", (40, 20), orientation=6)  # stored 40x20, shown 20x40
    sample = load_data_config(source).train.samples[0]
    assert (sample.width, sample.height) == (20, 40)
    np.testing.assert_allclose(sample.boxes[0], [5, 10, 15, 30], atol=1e-4)  # "0 0.5 0.5 0.5 0.5" on 20x40
    assert read_image(path).shape == (40, 20, 3)
    assert read_image(path, apply_exif=False).shape == (20, 40, 3)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grayscale_and_rgba_are_read_as_rgb(tmp_path: Path, mode: str) -> None:
    path = write_image(tmp_path / "x.png", (7, 5), mode=mode)
    pixels = read_image(path)
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.uint8
    expected = [128, 128, 128] if mode == "L" else [10, 200, 10]
    assert pixels[2, 3].tolist() == expected


# ------------------------------------------------------------------------------------------------ cache


def test_second_load_comes_from_the_cache_and_a_changed_label_rebuilds_it(tmp_path: Path, monkeypatch) -> None:
    source = yolo_set(tmp_path)
    first = load_data_config(source).train

    def must_not_open(path: Path) -> images.ImageInfo:
        raise AssertionError(f"{path} reopened despite the cache")

    monkeypatch.setattr(images, "probe_image", must_not_open)
    again = load_data_config(source).train
    assert [s.path for s in again.samples] == [s.path for s in first.samples]
    np.testing.assert_array_equal(again.samples[0].boxes, first.samples[0].boxes)

    monkeypatch.undo()
    label = write_labels(tmp_path / "labels/train/a.txt", "1 0.5 0.5 0.5 0.5\n")
    os.utime(label, ns=(1, 1))  # a different mtime even on coarse-grained file systems
    rebuilt = load_data_config(source).train
    assert rebuilt.samples[0].classes.tolist() == [1]


# ------------------------------------------------------------------------------------------------ COCO


def coco_set(root: Path, json_size_of_rotated: tuple[int, int] = (20, 40)) -> Path:
    """Sparse category ids 3 and 7, a crowd box, an image without annotations, an EXIF-rotated image."""
    write_image(root / "train/a.jpg", (50, 40))
    write_image(root / "train/b.jpg", (30, 30))
    write_image(root / "train/r.jpg", (40, 20), orientation=6)  # shown as 20x40
    doc = {
        "images": [
            {"id": 11, "file_name": "a.jpg", "width": 50, "height": 40},
            {"id": 12, "file_name": "b.jpg", "width": 30, "height": 30},
            {"id": 13, "file_name": "r.jpg", "width": json_size_of_rotated[0], "height": json_size_of_rotated[1]},
        ],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 7, "bbox": [5, 6, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 3, "bbox": [0, 0, 50, 40], "iscrowd": 1},
            {"id": 3, "image_id": 13, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 0},
        ],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    (root / "ann").mkdir(parents=True, exist_ok=True)
    (root / "ann/train.json").write_text(json.dumps(doc))
    splits = {"images": "train", "annotations": "ann/train.json"}
    return write_yaml(root / "coco.yaml", {"format": "coco", "path": ".", "train": splits, "val": splits})


def test_coco_sparse_ids_crowd_and_background_images(tmp_path: Path) -> None:
    cfg = load_data_config(coco_set(tmp_path))
    assert cfg.format == "coco"
    assert cfg.names == ("cat", "dog") and cfg.category_ids == (3, 7)
    a, b, r = cfg.train.samples
    assert (a.image_id, b.image_id, r.image_id) == (11, 12, 13)
    np.testing.assert_allclose(a.boxes, [[5, 6, 15, 26], [0, 0, 50, 40]])
    assert a.classes.tolist() == [1, 0]  # category 7 → 1, 3 → 0
    assert a.crowd.tolist() == [False, True]
    assert b.boxes.shape == (0, 4)  # kept as a background image
    assert (r.width, r.height, r.apply_exif) == (20, 40, True)
    assert cfg.train.annotations == tmp_path / "ann/train.json"


def test_coco_boxes_drawn_on_unrotated_pixels_are_read_unrotated(tmp_path: Path) -> None:
    cfg = load_data_config(coco_set(tmp_path, json_size_of_rotated=(40, 20)))
    r = cfg.train.samples[2]
    assert (r.width, r.height, r.apply_exif) == (40, 20, False)


def test_coco_split_is_cached(tmp_path: Path, monkeypatch) -> None:
    source = coco_set(tmp_path)
    load_data_config(source).train
    monkeypatch.setattr(images, "probe_image", lambda p: (_ for _ in ()).throw(AssertionError(f"reopened {p}")))
    assert len(load_data_config(source).train.samples) == 3


def test_coco_unknown_category_names_the_annotation(tmp_path: Path) -> None:
    source = coco_set(tmp_path)
    path = tmp_path / "ann/train.json"
    doc = json.loads(path.read_text())
    doc["annotations"][2]["category_id"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annotations\[2\]: category_id 99 is not in 'categories'"):
        load_data_config(source).train  # noqa: B018


def test_coco_yaml_without_annotations_names_the_field(tmp_path: Path) -> None:
    coco_set(tmp_path)
    source = write_yaml(
        tmp_path / "bad.yaml",
        {"format": "coco", "train": {"images": "train", "annotations": "ann/none.json"}, "val": {"images": "train"}},
    )
    with pytest.raises(DataError, match=r"field 'train.annotations'"):
        load_data_config(source)


def test_a_missing_test_split_only_fails_when_asked_for(tmp_path: Path) -> None:
    yolo_set(tmp_path)
    source = write_yaml(
        tmp_path / "with_test.yaml",
        {"train": "images/train", "val": "images/val", "test": "test-dev.txt", "names": ["cat", "dog"]},
    )
    cfg = load_data_config(source)
    assert len(cfg.train.samples) == 2
    with pytest.raises(DataError, match=r"field 'test': .*test-dev.txt does not exist"):
        cfg.split("test")
