"""Data as labelling tools and hubs export it: Ultralytics' YAML path rules, polygon rows, exported folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from yoloswap.data.formats import load_data_config
from yoloswap.errors import DataError


def image(path: Path, size: tuple[int, int] = (100, 50)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 60, 90)).save(path)


def labels(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def roboflow_export(root: Path) -> Path:
    """Roboflow's "YOLOv8" export: train/ valid/ test/ beside a data.yaml that says ``../train/images``."""
    for split, n in (("train", 3), ("valid", 2), ("test", 1)):
        for i in range(n):
            image(root / split / "images" / f"{i}.jpg")
            labels(root / split / "labels" / f"{i}.txt", "1 0.5 0.5 0.2 0.4\n")
    doc = {"train": "../train/images", "val": "../valid/images", "test": "../test/images", "nc": 2,
           "names": ["car", "bus"], "roboflow": {"workspace": "w", "project": "p", "version": 3},
           "download": "https://example.invalid/x.zip"}  # fmt: skip
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    return root


def test_roboflow_export_folder_reads_with_the_dotdot_fallback_and_ignores_extra_keys(tmp_path: Path) -> None:
    cfg = load_data_config(roboflow_export(tmp_path / "ds"))
    assert cfg.layout.startswith("data.yaml") and cfg.names == ("car", "bus")
    assert [len(cfg.split(k).samples) for k in ("train", "val", "test")] == [3, 2, 1]
    np.testing.assert_allclose(cfg.train.samples[0].boxes[0], [40, 15, 60, 35])  # 0.5 0.5 0.2 0.4 of 100x50
    assert cfg.split_sources["train"].entries[0] == tmp_path / "ds" / "train" / "images"


def test_yaml_path_rules_no_path_relative_path_list_and_txt(tmp_path: Path) -> None:
    for sub in ("a", "b", "c"):
        image(tmp_path / "data" / "images" / sub / "x.jpg")
    (tmp_path / "data" / "c.txt").write_text("images/c/x.jpg\n")
    (tmp_path / "cfg").mkdir()
    rel = {"path": "../data", "train": ["images/a", "images/b"], "val": "c.txt", "names": {0: "car"}}
    (tmp_path / "cfg" / "rel.yaml").write_text(yaml.safe_dump(rel))
    cfg = load_data_config(tmp_path / "cfg" / "rel.yaml")
    assert cfg.root == tmp_path / "data" and len(cfg.train.samples) == 2 and len(cfg.val.samples) == 1
    (tmp_path / "data" / "nopath.yaml").write_text(yaml.safe_dump({"train": "images/a", "val": "images/b", "nc": 1}))
    cfg = load_data_config(tmp_path / "data" / "nopath.yaml")
    assert cfg.root == tmp_path / "data" and cfg.names == ("class_0",)  # nc alone names class_0.. as Ultralytics


def test_relative_path_found_only_from_the_working_folder_reads_as_ultralytics_does(tmp_path, monkeypatch) -> None:
    image(tmp_path / "sets" / "d" / "images" / "x.jpg")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "d.yaml").write_text(yaml.safe_dump({"path": "sets/d", "train": "images", "val": "images",
                                                             "names": ["a"]}))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert load_data_config(tmp_path / "cfg" / "d.yaml").root == tmp_path / "sets" / "d"


def test_nc_disagreeing_with_names_is_one_line(tmp_path: Path) -> None:
    roboflow_export(tmp_path)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"train": "../train/images", "val": "../valid/images",
                                                        "nc": 3, "names": ["car", "bus"]}))  # fmt: skip
    with pytest.raises(DataError, match=r"data.yaml: field 'nc' is 3 but 'names' lists 2"):
        load_data_config(tmp_path)


def test_polygon_rows_become_their_bounding_box_row_by_row(tmp_path: Path) -> None:
    image(tmp_path / "images" / "t" / "a.jpg")
    labels(tmp_path / "labels" / "t" / "a.txt",
           "0 0.5 0.5 0.2 0.4\n1 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n0 0.5 0.5 0.5 0.5 0.6 0.5 0.6 0.6 0.5 0.6\n")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"train": "images/t", "val": "images/t", "names": ["a", "b"]}))
    s = load_data_config(tmp_path / "d.yaml").train.samples[0]
    assert s.classes.tolist() == [0, 1, 0]
    np.testing.assert_allclose(s.boxes, [[40, 15, 60, 35], [10, 10, 30, 30], [50, 25, 60, 30]], atol=1e-4)


@pytest.mark.parametrize(("row", "expected"), [("0 0.1 0.1 0.2 0.2 0.3", "odd number of polygon coordinates"),
                                               ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4 0.4 0.5", "odd number"),
                                               ("0 0.1 0.1 0.2", "got 4 fields")])  # fmt: skip
def test_broken_polygon_row_is_file_and_line(tmp_path: Path, row: str, expected: str) -> None:
    image(tmp_path / "images" / "t" / "a.jpg")
    labels(tmp_path / "labels" / "t" / "a.txt", f"0 0.5 0.5 0.2 0.2\n{row}\n")
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({"train": "images/t", "val": "images/t", "names": ["a"]}))
    with pytest.raises(DataError) as err:
        load_data_config(tmp_path / "d.yaml").train
    assert str(err.value).startswith(f"{tmp_path / 'labels' / 't' / 'a.txt'}:2: ") and expected in str(err.value)


def test_roboflow_coco_export_folder_without_its_project_category(tmp_path: Path) -> None:
    for split, n in (("train", 2), ("valid", 1)):
        imgs = []
        for i in range(n):
            image(tmp_path / split / f"{i}.jpg")
            imgs.append({"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 50})
        anns = [{"id": i + 1, "image_id": i, "category_id": 1, "bbox": [10, 5, 20, 30], "iscrowd": 0}
                for i in range(n)]  # fmt: skip
        cats = [{"id": 0, "name": "cars-x1y2", "supercategory": "none"},  # Roboflow: the project, not a class
                {"id": 1, "name": "car", "supercategory": "cars-x1y2"}]  # fmt: skip
        doc = {"images": imgs, "annotations": anns, "categories": cats}
        (tmp_path / split / "_annotations.coco.json").write_text(json.dumps(doc))
    cfg = load_data_config(tmp_path)
    assert "COCO" in cfg.layout and cfg.names == ("car",)
    assert len(cfg.train.samples) == 2 and sum(len(s.boxes) for s in cfg.train.samples) == 2
    np.testing.assert_allclose(cfg.val.samples[0].boxes[0], [10, 5, 30, 35])


def test_label_studio_tree_with_classes_txt(tmp_path: Path) -> None:
    for i in range(3):
        image(tmp_path / "images" / f"{i}.jpg")
        labels(tmp_path / "labels" / f"{i}.txt", "1 0.5 0.5 0.2 0.4\n0 0.25 0.5 0.1 0.2\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    cfg = load_data_config(tmp_path)
    assert "Label Studio" in cfg.layout and cfg.names == ("cat", "dog")
    assert len(cfg.train.samples) == 3 and sum(len(s.boxes) for s in cfg.train.samples) == 6
    np.testing.assert_allclose(cfg.train.samples[0].boxes[1], [20, 20, 30, 30])
    assert any("validating on the training images" in n for n in cfg.notes)


def test_folder_matching_no_layout_lists_the_layouts_looked_for(tmp_path: Path) -> None:
    image(tmp_path / "photo.jpg")
    with pytest.raises(DataError) as err:
        load_data_config(tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path}: not a data set folder") and "\n" not in msg
    assert all(word in msg for word in ("data.yaml", "VOC", "COCO", "Label Studio"))
