"""The bad-data zoo: every hostile or broken input a user can feed, and what it gets.

Two outcomes only: a one-line error that names the file (and line or entry) with a non-zero exit, or a counted
skip (an unusable image, a box wholly outside its image) while training goes on. Nothing is ever written outside
the run folder (--out) and the label cache.
"""

from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.test_data_formats import coco_set, write_image, write_labels, yolo_set
from yoloswap.data import images
from yoloswap.data.formats import DataWarning, load_data_config
from yoloswap.errors import DataError


def write_png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit black PNG of ``width`` x ``height``: a few kB on disk, ``width * height`` bytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row * 1000) for _ in range(height // 1000)) + z.compress(row * (height % 1000))
    body += z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def truncated_jpeg(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # a download cut short: valid header, no end marker
    return path


def scan(source: Path, split: str = "train"):
    """Load ``split`` and return it with the DataWarnings raised while scanning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load_data_config(source).split(split)
    return result, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def one_line_error(source: Path, split: str = "train") -> str:
    with pytest.raises(DataError) as err:
        load_data_config(source).split(split)
    message = str(err.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------ images: skipped


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("cut.jpg", truncated_jpeg, "truncated JPEG"),
        ("empty.jpg", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
        ("bomb.png", lambda p: write_png_bomb(p, 9000, 9000), "81 M pixels, over yoloswap's limit of 67 M"),
        ("huge.png", lambda p: write_png_bomb(p, 20000, 20000), "DecompressionBombError"),  # PIL refuses at open
    ],
)
def test_unusable_images_are_skipped_and_counted(tmp_path: Path, name: str, make, reason: str) -> None:
    source = yolo_set(tmp_path)
    bad = tmp_path / "images/train" / name
    make(bad)
    split, warned = scan(source)
    assert [s.path.name for s in split.samples] == ["a.jpg", "b.png"]
    assert len(split.skipped) == 1 and split.skipped[0].startswith(f"{bad}: ") and reason in split.skipped[0]
    assert any("skipped 1 unreadable image(s)" in w and name in w for w in warned)


def test_a_decompression_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(tmp_path, monkeypatch) -> None:
    bomb = write_png_bomb(tmp_path / "bomb.png", 9000, 9000)
    assert bomb.stat().st_size < 100_000  # 81 MB once decoded

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "verify", no_decoding)
    with pytest.raises(images.CorruptImageError, match="over yoloswap's limit"):
        images.probe_image(bomb)
    with pytest.raises(images.CorruptImageError, match="over yoloswap's limit"):
        images.read_image(bomb)


def test_the_pixel_limit_admits_an_8k_square(tmp_path: Path) -> None:
    assert images.MAX_IMAGE_PIXELS == 8192 * 8192
    info = images.probe_image(write_png_bomb(tmp_path / "big.png", 8192, 8192))
    assert (info.width, info.height) == (8192, 8192)


# ------------------------------------------------------------------------------------------------ labels: errors


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0 nan 0.5 0.2 0.2\n", "values must be finite"),
        ("0 0.5 0.5 inf 0.2\n", "values must be finite"),
        ("0 0.5 0.5 0.2 -0.2\n", "h=-0.2 is outside [0, 1]"),
        ("0 0.5 0.5 -0.0 0.2\n", "width and height must be > 0"),
    ],
)
def test_non_finite_and_negative_label_values_stop_with_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    source = yolo_set(tmp_path)
    label = write_labels(tmp_path / "labels/train/a.txt", "0 0.5 0.5 0.2 0.2\n" + text)
    message = one_line_error(source)
    assert message.startswith(f"{label}:2: ") and problem in message


def test_a_label_file_that_is_not_utf8_stops_with_its_name(tmp_path: Path) -> None:
    source = yolo_set(tmp_path)
    label = tmp_path / "labels/train/a.txt"
    label.write_bytes("0 0.5 0.5 0.2 0.2 # größe\n".encode("latin-1"))
    message = one_line_error(source)
    assert message.startswith(f"{label}: label file is not UTF-8 text (byte 0xf6")


def test_a_byte_order_mark_is_not_a_field(tmp_path: Path) -> None:
    source = yolo_set(tmp_path)
    (tmp_path / "labels/train/a.txt").write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.5 0.5\n")  # Notepad's UTF-8
    split, _ = scan(source)
    assert split.samples[0].classes.tolist() == [0]


# ------------------------------------------------------------------------------------------------ boxes outside


def test_a_box_partly_outside_is_clipped_and_one_wholly_outside_is_dropped_and_counted(tmp_path: Path) -> None:
    source = yolo_set(tmp_path)  # a.jpg is 40x20
    # partly outside: cx 0.9, w 0.4 spans x 28..44 → clipped to 28..40; wholly outside (within the rounding
    # tolerance that normalised coordinates are allowed): x from 40.01 → nothing left
    label = write_labels(tmp_path / "labels/train/a.txt", "0 0.9 0.5 0.4 0.5\n1 1.0008 0.5 0.0002 0.5\n")
    split, warned = scan(source)
    a = split.samples[0]
    np.testing.assert_allclose(a.boxes, [[28, 5, 40, 15]], atol=1e-4)
    assert a.classes.tolist() == [0]
    assert split.dropped == (f"{label}: 1 box(es) wholly outside the image dropped",)
    assert any("dropped boxes wholly outside the image in 1 image(s)" in w for w in warned)


def test_coco_boxes_outside_the_image_are_clipped_or_dropped_and_counted(tmp_path: Path) -> None:
    source = coco_set(tmp_path)  # a.jpg is 50x40
    path = tmp_path / "ann/train.json"
    doc = json.loads(path.read_text())
    doc["annotations"] += [
        {"id": 4, "image_id": 11, "category_id": 7, "bbox": [40, 30, 20, 20], "iscrowd": 0},  # partly
        {"id": 5, "image_id": 11, "category_id": 7, "bbox": [60, 0, 10, 10], "iscrowd": 0},  # wholly (right)
        {"id": 6, "image_id": 11, "category_id": 3, "bbox": [-30, -30, 10, 10], "iscrowd": 0},  # wholly (above)
    ]
    path.write_text(json.dumps(doc))
    split, warned = scan(source)
    a = split.samples[0]
    np.testing.assert_allclose(a.boxes[-1], [40, 30, 50, 40])
    assert len(a.boxes) == 3  # the two of coco_set plus the clipped one
    assert split.dropped == (f"{tmp_path / 'train/a.jpg'}: 2 box(es) wholly outside the image dropped",)
    assert any("in 1 image(s)" in w for w in warned)


@pytest.mark.parametrize("bbox", [[1, 2, -3, 4], [1, 2, 3, float("nan")], [float("inf"), 0, 1, 1]])
def test_coco_bbox_with_negative_size_or_nan_stops_with_the_annotation(tmp_path: Path, bbox: list) -> None:
    source = coco_set(tmp_path)
    path = tmp_path / "ann/train.json"
    doc = json.loads(path.read_text())
    doc["annotations"][0]["bbox"] = bbox
    path.write_text(json.dumps(doc))  # json writes NaN / Infinity literals, and reads them back
    message = one_line_error(source)
    assert message.startswith(f"{path}: annotations[0]: bbox must be finite with width and height >= 0")


# ------------------------------------------------------------------------------------------------ COCO structure


def edit_coco(root: Path, change) -> tuple[Path, Path]:
    source = coco_set(root)
    path = root / "ann/train.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return source, path


def test_duplicate_coco_image_ids_stop_with_the_entry(tmp_path: Path) -> None:
    source, path = edit_coco(tmp_path, lambda d: d["images"][2].update(id=11))
    assert one_line_error(source) == f"{path}: images[2]: id 11 appears twice"


def test_an_annotation_of_an_image_not_in_the_json_stops_with_the_annotation(tmp_path: Path) -> None:
    source, path = edit_coco(tmp_path, lambda d: d["annotations"][0].update(image_id=99))
    assert one_line_error(source) == f"{path}: annotations[0]: image_id 99 is not in 'images'"


def test_an_image_listed_in_the_json_but_missing_on_disk_is_skipped_and_counted(tmp_path: Path) -> None:
    source = coco_set(tmp_path)
    (tmp_path / "train/b.jpg").unlink()
    split, warned = scan(source)
    assert [s.image_id for s in split.samples] == [11, 13]
    assert split.skipped == (f"{tmp_path / 'train/b.jpg'}: file not found",)
    assert any("skipped 1 unreadable image(s)" in w for w in warned)


@pytest.mark.parametrize("name", ["../../secret.jpg", "sub/../../x.jpg", "/etc/passwd", "..\\..\\x.jpg", "C:\\x.jpg"])
def test_a_coco_file_name_leaving_the_images_folder_stops(tmp_path: Path, name: str) -> None:
    write_image(tmp_path / "secret.jpg")
    source, path = edit_coco(tmp_path / "data", lambda d: d["images"][1].update(file_name=name))
    message = one_line_error(source)
    assert message.startswith(f"{path}: images[1]: file_name ") and "leaves the images folder" in message


def test_a_coco_file_name_in_a_subfolder_is_fine(tmp_path: Path) -> None:
    write_image(tmp_path / "train/sub/b.jpg", (30, 30))
    source, _ = edit_coco(tmp_path, lambda d: d["images"][1].update(file_name="sub/./b.jpg"))
    split, _ = scan(source)
    assert len(split.samples) == 3


# ------------------------------------------------------------------------------------------------ YAML


def test_yaml_with_python_tags_is_refused_without_running_anything(tmp_path: Path) -> None:
    yolo_set(tmp_path)
    marker = tmp_path / "pwned"
    source = tmp_path / "evil.yaml"
    source.write_text(
        f"train: images/train\nval: images/val\nnames: [cat, dog]\n"
        f"x: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    with pytest.raises(DataError) as err:
        load_data_config(source)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: line 4: could not determine a constructor for the tag")
    assert "python/object/apply:os.system" in message and "Python tags are refused" in message
    assert not marker.exists()


def test_a_data_yaml_that_is_not_utf8_stops_with_its_name(tmp_path: Path) -> None:
    yolo_set(tmp_path)
    source = tmp_path / "latin.yaml"
    source.write_bytes("train: images/train\nval: images/val\nnames: [größe]\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.yaml: not UTF-8 text \(byte 0xf6"):
        load_data_config(source)


# ------------------------------------------------------------------------------------------------ many objects


def test_an_image_with_5000_objects_loads_and_augments(tmp_path: Path) -> None:
    from yoloswap.data.dataset import DetectionDataset, collate

    source = yolo_set(tmp_path)
    write_image(tmp_path / "images/train/a.jpg", (400, 300))
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.05, 0.95, (5000, 2))
    lines = "".join(f"{i % 2} {cx:.4f} {cy:.4f} 0.05 0.05\n" for i, (cx, cy) in enumerate(centres))
    write_labels(tmp_path / "labels/train/a.txt", lines)
    split, _ = scan(source)
    a = split.samples[0]
    assert a.boxes.shape == (5000, 4) and np.bincount(a.classes).tolist() == [2500, 2500]
    plain = DetectionDataset(split.samples, 128, augment=False)
    images_, targets, _ = collate([plain[0], plain[0]])
    assert images_.shape == (2, 3, 128, 128) and targets.shape == (10_000, 6)
    augmented = DetectionDataset(split.samples, 128, augment=True, seed=0)
    _, targets, _ = collate([augmented[0], augmented[0]])
    assert len(targets) > 1000  # a mosaic may hold the image up to 4 times; affine crops some boxes away
    assert torch.isfinite(targets).all() and (targets[:, 2:4] >= 0).all() and (targets[:, 2:4] <= 128).all()


# ------------------------------------------------------------------------------------------------ through the CLI


def _files(root: Path, *excluded: Path) -> dict[str, int]:
    """Every file under ``root`` (path → size), leaving out ``excluded`` folders and label caches."""
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".cache.npz") and not any(e in p.parents for e in excluded)
    }


ZOO_ERRORS = {
    "nan-label": lambda root: (yolo_set(root), write_labels(root / "labels/train/a.txt", "0 nan 0.5 0.2 0.2\n")),
    "latin1-label": lambda root: (yolo_set(root), (root / "labels/train/a.txt").write_bytes(b"0 0.5 \xf6")),
    "python-tag": lambda root: (yolo_set(root), (root / "data.yaml").write_text("train: !!python/name:os.system\n")),
    "escaping-file-name": lambda root: (
        edit_coco(root, lambda d: d["images"][0].update(file_name="../../x.jpg")),
        (root / "coco.yaml").rename(root / "data.yaml"),
    ),
}


@pytest.mark.parametrize("case", sorted(ZOO_ERRORS))
def test_the_cli_answers_bad_data_with_one_line_and_exit_1_and_writes_nothing_outside_out(
    cli, tmp_path: Path, monkeypatch, case: str
) -> None:
    data = tmp_path / "data"
    ZOO_ERRORS[case](data)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _files(tmp_path)
    code, out, err = cli("train", "--data", str(data / "data.yaml"), "--out", str(tmp_path / "run"), "--epochs",
                         "1", "--img-size", "64", "--workers", "0", "--device", "cpu")  # fmt: skip
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("Error: ") and str(data) in lines[-1]
    assert "Traceback" not in err and out == ""
    assert _files(tmp_path, tmp_path / "run") == before


@pytest.mark.slow
def test_training_goes_on_past_skipped_images_and_writes_only_its_run_folder_and_cache(
    cli, tmp_path: Path, monkeypatch
) -> None:
    from tests.make_data import ultralytics_set

    data = ultralytics_set(tmp_path / "data", names_as_dict=False)
    train_dir = data.parent / "images" / "train"
    truncated_jpeg(train_dir / "cut.jpg")
    (train_dir / "empty.jpg").write_bytes(b"")
    write_png_bomb(train_dir / "bomb.png", 9000, 9000)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _files(tmp_path)
    code, _, err = cli("train", "--backbone", "yolov5n", "--data", str(data), "--out", str(tmp_path / "run"),
                       "--epochs", "1", "--img-size", "64", "--batch-size", "4", "--workers", "0",
                       "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert "skipped 3 unreadable image(s)" in err
    assert (tmp_path / "run/weights/last.pt").is_file()
    assert _files(tmp_path, tmp_path / "run") == before
    assert list(data.parent.glob("*.cache.npz"))  # the cache is the one thing written next to the data
    assert yaml.safe_load((tmp_path / "run/config.yaml").read_text())["options"]["epochs"] == 1


# ------------------------------------------------------------------------------------------------ predict sources


def test_predict_refuses_a_source_that_is_not_an_image(tmp_path: Path) -> None:
    from yoloswap.deploy.predict import iter_sources

    source = yolo_set(tmp_path)  # data.yaml: what a user passes by mistake
    with pytest.raises(DataError) as err:
        iter_sources(source)
    assert str(err.value) == (f"--source {source}: not an image (jpg, jpeg, png, bmp, webp); give an image file or "
                              "a folder of images")  # fmt: skip


def test_predict_logs_an_unreadable_image_in_one_line_and_fails_when_none_is_readable(tmp_path, caplog) -> None:
    from yoloswap.deploy.predict import predict_images

    bad = [truncated_jpeg(tmp_path / "cut.jpg"), write_png_bomb(tmp_path / "bomb.png", 9000, 9000)]
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff")  # not even a header
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError) as err:
        warnings.simplefilter("always")
        list(predict_images(torch.nn.Identity(), bad, 64, torch.device("cpu")))
    assert str(err.value) == f"--source: none of the 2 image(s) could be read (e.g. {bad[0]})"
    assert [w for w in caught if issubclass(w.category, UserWarning)] == []  # no raw warning with a source line
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(logged) == 2 and logged[0].startswith(f"warning: skipped {bad[0]}: cannot decode image")
    assert "over yoloswap's limit" in logged[1]
