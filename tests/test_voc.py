"""Pascal VOC as users download it: devkit folders, VOC07+12 via a YAML, difficult objects, hostile XML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from yoloswap.data.formats import DataWarning, load_data_config
from yoloswap.errors import DataError

OBJ = "<object><name>{name}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>" \
      "<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"  # fmt: skip


def voc_devkit(root: Path, year: str, sets: dict[str, list[str]], objects: dict[str, list[tuple]]) -> Path:
    """root/VOC<year> with JPEGImages (64x48), Annotations, ImageSets/Main/<set>.txt; objects per image id as
    (name, difficult, x1, y1, x2, y2) in VOC's 1-based pixels."""
    kit = root / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (kit / sub).mkdir(parents=True, exist_ok=True)
    for image_id, objs in objects.items():
        Image.new("RGB", (64, 48), (90, 120, 30)).save(kit / "JPEGImages" / f"{image_id}.jpg")
        body = "".join(OBJ.format(name=n, d=d, x1=a, y1=b, x2=c, y2=e) for n, d, a, b, c, e in objs)
        (kit / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><size><width>64</width><height>48</height></size>{body}</annotation>")
    for name, ids in sets.items():
        (kit / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return kit


def voc0712(root: Path) -> Path:
    """VOC2007 (trainval 2 images, test 1) and VOC2012 (trainval 1), with difficult objects, and the YAML."""
    voc_devkit(root / "VOCdevkit", "2007", {"trainval": ["000001", "000002"], "test": ["000003"]}, {
        "000001": [("dog", 0, 11, 21, 40, 48), ("cat", 1, 1, 1, 10, 10)],
        "000002": [("cat", 0, 5, 5, 30, 30)],
        "000003": [("dog", 0, 1, 1, 32, 32), ("dog", 1, 40, 10, 60, 40)],
    })  # fmt: skip
    voc_devkit(root / "VOCdevkit", "2012", {"trainval": ["2012_000001"]},
               {"2012_000001": [("person", 0, 2, 2, 20, 20)]})  # fmt: skip
    doc = {"format": "voc", "path": "VOCdevkit",
           "train": ["VOC2007/ImageSets/Main/trainval.txt", "VOC2012/ImageSets/Main/trainval.txt"],
           "val": "VOC2007/ImageSets/Main/test.txt"}  # fmt: skip
    path = root / "voc0712.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_voc0712_yaml_reads_both_years_with_sorted_names_and_zero_based_pixels(tmp_path: Path) -> None:
    with pytest.warns(DataWarning, match="class names sorted from the XMLs: cat, dog, person"):
        cfg = load_data_config(voc0712(tmp_path))
    assert cfg.names == ("cat", "dog", "person")
    train = cfg.train.samples
    assert len(train) == 3 and sum(len(s.boxes) for s in train) == 4
    first = train[0]
    np.testing.assert_allclose(first.boxes[0], [10, 20, 40, 48])  # 1-based (11, 21) -> 0-based edge 10, 20
    assert first.classes.tolist() == [1, 0] and first.crowd.tolist() == [False, True]  # difficult kept as crowd
    assert len(cfg.val.samples) == 1 and cfg.val.samples[0].crowd.tolist() == [False, True]


def test_devkit_folder_as_data_trains_on_trainval_and_validates_on_test(tmp_path: Path) -> None:
    voc0712(tmp_path)
    cfg = load_data_config(tmp_path / "VOCdevkit" / "VOC2007")
    assert "VOC devkit" in cfg.layout
    assert cfg.split_sources["train"].entries[0].name == "trainval.txt"
    assert cfg.split_sources["val"].entries[0].name == "test.txt"
    assert len(cfg.train.samples) == 2 and len(cfg.val.samples) == 1


def test_devkit_without_trainval_or_test_falls_back_to_train_and_val(tmp_path: Path) -> None:
    kit = voc_devkit(tmp_path, "2012", {"train": ["a"], "val": ["b"]},
                     {"a": [("cat", 0, 1, 1, 9, 9)], "b": [("cat", 0, 1, 1, 9, 9)]})  # fmt: skip
    cfg = load_data_config(kit)
    assert [cfg.split_sources[k].entries[0].stem for k in ("train", "val")] == ["train", "val"]


def test_difficult_objects_are_neither_true_nor_false_positives_in_evaluation(tmp_path: Path) -> None:
    from yoloswap.evaluation.coco import coco_gt_dict, detections_to_coco, evaluate_coco
    from yoloswap.evaluation.loop import _eval_image

    cfg = load_data_config(voc0712(tmp_path))
    sample = cfg.val.samples[0]  # a plain dog (0, 0, 32, 32) and a difficult dog (39, 9, 60, 40)
    dets = np.array([[39, 9, 60, 40, 0.9, 1], [0, 0, 32, 32, 0.8, 1]])  # the difficult one scores higher
    results = detections_to_coco(sample.image_id, dets)
    ignored = evaluate_coco(coco_gt_dict([_eval_image(sample)], cfg.names), results)
    assert ignored["map50"] == pytest.approx(1.0)  # a false positive ranked first would lower AP
    img = _eval_image(sample)
    counted = type(img)(img.image_id, img.width, img.height, img.boxes[:1], img.classes[:1])  # difficult as noise
    assert evaluate_coco(coco_gt_dict([counted], cfg.names), results)["map50"] < 0.9


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        ("<annotation><object><name>cat</name></object></annotation>", "<object> #1 (cat): missing <bndbox>"),
        ("<annotation>" + OBJ.format(name="cow", d=0, x1=1, y1=1, x2=5, y2=5) + "</annotation>",
         "<name>cow</name> is not in names"),
        ("<annotation>" + OBJ.format(name="cat", d=0, x1=1, y1=1, x2=99, y2=5) + "</annotation>",
         "is outside the 64x48 image"),
        ('<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
         "<annotation><object><name>&b;</name></object></annotation>", "refused: EntitiesForbidden"),
    ],
)
def test_bad_voc_xml_is_one_line_naming_the_file_and_element(tmp_path: Path, xml: str, expected: str) -> None:
    kit = voc_devkit(tmp_path, "2007", {"trainval": ["a"], "test": ["a"]}, {"a": []})
    (kit / "Annotations" / "a.xml").write_text(xml)
    (tmp_path / "v.yaml").write_text(yaml.safe_dump({"format": "voc", "path": str(kit), "names": ["cat", "dog"],
                                                     "train": "ImageSets/Main/trainval.txt",
                                                     "val": "ImageSets/Main/test.txt"}))  # fmt: skip
    with pytest.raises(DataError) as err:
        load_data_config(tmp_path / "v.yaml").train
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(kit / "Annotations" / "a.xml")) and expected in msg
