"""``yoloswap check-data``: the numbers a user reads before training, as JSON, as a table, and labels.png."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.test_voc import voc0712
from yoloswap.data.check import check_data, label_arrays
from yoloswap.data.formats import load_data_config
from yoloswap.reports.charts import plot_labels


def label_studio(root: Path) -> Path:
    """3 images 100x50; two labelled (cat box 20x10 px, dog box 50x20 px), one with an empty label file, one
    label row wholly outside the image dropped."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        Image.new("RGB", (100, 50)).save(root / "images" / f"{i}.png")
    (root / "labels" / "0.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.5 0.4\n")
    (root / "labels" / "1.txt").write_text("1 0.25 0.25 0.5 0.4\n0 1.0005 0.5 0.0001 0.2\n")
    (root / "labels" / "2.txt").write_text("")
    (root / "classes.txt").write_text("cat\ndog\n")
    return root


def test_check_data_counts_per_split_class_and_box_size(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_data(load_data_config(label_studio(tmp_path)))
    train = report["splits"]["train"]
    assert report["names"] == ["cat", "dog"] and "Label Studio" in report["layout"]
    assert (train["images"], train["boxes"], train["images_without_boxes"]) == (3, 3, 1)
    assert train["per_class"] == {"cat": 1, "dog": 2}
    assert train["median_box_wh"] == [50.0, 20.0] and train["median_box_wh_relative"] == [0.5, 0.4]
    assert len(train["dropped"]) == 1 and "1.txt: 1 box(es) wholly outside" in train["dropped"][0]


def test_difficult_boxes_are_counted_as_ignored_not_as_training_boxes(tmp_path: Path) -> None:
    report = check_data(load_data_config(voc0712(tmp_path)))
    train = report["splits"]["train"]  # 4 objects, one of them a difficult cat
    assert (train["boxes"], train["ignored_boxes"]) == (3, 1)
    assert train["per_class"] == {"cat": 1, "dog": 1, "person": 1}


def test_check_data_command_prints_json_and_writes_labels_png(tmp_path: Path) -> None:
    data = label_studio(tmp_path / "ds")
    plot = tmp_path / "labels.png"
    proc = subprocess.run([sys.executable, "-m", "yoloswap", "check-data", "--data", str(data), "--json",
                           "--plot", str(plot)], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["splits"]) == {"train", "val"} and report["names"] == ["cat", "dog"]
    assert {"images", "boxes", "per_class", "median_box_wh", "skipped", "dropped"} <= set(report["splits"]["val"])
    assert Image.open(plot).size[0] > 600


def test_check_data_on_a_folder_of_nothing_is_one_line_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "yoloswap", "check-data", "--data", str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "looked for" in proc.stderr


def test_label_arrays_are_relative_cxcywh_without_crowd(tmp_path: Path) -> None:
    cfg = load_data_config(voc0712(tmp_path))
    classes, boxes = label_arrays(cfg.val.samples)  # the difficult dog is left out
    assert classes.tolist() == [1]
    np.testing.assert_allclose(boxes[0], [16 / 64, 16 / 48, 32 / 64, 32 / 48])
    assert plot_labels(classes, boxes, cfg.names, tmp_path / "l.png").is_file()


TINY = ["--backbone", "yolov5n", "--img-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu",
        "--epochs", "1"]  # fmt: skip


def test_train_writes_labels_png_and_a_failing_plot_only_warns(cli, tmp_path: Path, monkeypatch) -> None:
    from tests.make_data import ultralytics_set

    data = ultralytics_set(tmp_path / "data", names_as_dict=False, n_train=4, n_val=2)
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert Image.open(tmp_path / "run" / "labels.png").size[0] > 600

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts today")

    monkeypatch.setattr("yoloswap.training.loop.plot_labels", broken)
    code, _, err = cli("train", *TINY, "--data", str(data), "--out", str(tmp_path / "run2"))
    assert code == 0, err
    assert "labels.png not written (RuntimeError: no fonts today)" in " ".join(err.split())
    assert (tmp_path / "run2" / "weights" / "last.pt").is_file()
