"""The built-in shapes set: deterministic, correctly labelled, and written all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yoloswap.data import synthetic
from yoloswap.data.formats import load_data_config
from yoloswap.data.synthetic import CLASS_NAMES, builtin_data_yaml, render_scene, write_demo_data
from yoloswap.errors import DataError

SMALL = dict(num_train=6, num_val=3, img_size=128)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    a = write_demo_data(tmp_path / "a", **SMALL).parent
    b = write_demo_data(tmp_path / "b", **SMALL).parent
    assert files(a) == files(b)
    c = write_demo_data(tmp_path / "c", **SMALL, seed=1).parent
    assert files(c)["images/train/000000.jpg"] != files(a)["images/train/000000.jpg"]


def test_written_set_loads_with_the_labels_it_was_drawn_with(tmp_path: Path) -> None:
    cfg = load_data_config(write_demo_data(tmp_path / "set", **SMALL))
    assert cfg.names == CLASS_NAMES
    assert (len(cfg.train.samples), len(cfg.val.samples)) == (6, 3)
    for index, sample in enumerate(cfg.val.samples):
        scene = render_scene((0, 1, index), size=128)  # split index 1 = val
        assert (sample.width, sample.height) == (128, 128)
        np.testing.assert_allclose(sample.boxes, scene.boxes, atol=1e-3)
        np.testing.assert_array_equal(sample.classes, scene.classes)


@pytest.mark.parametrize("seed", range(8))
def test_labels_land_on_the_drawn_shapes(seed: int) -> None:
    scene = render_scene(seed)
    background = render_scene(seed, with_objects=False)  # same clutter, no shapes
    changed = np.abs(scene.image.astype(int) - background.image.astype(int)).max(axis=2) > 30  # (H, W)
    covered = np.zeros_like(changed)
    assert 1 <= len(scene.boxes) <= 6
    for x1, y1, x2, y2 in scene.boxes.astype(int):
        assert 16 <= max(x2 - x1, y2 - y1) <= 96  # objects of 16-96 px
        assert changed[y1:y2, x1:x2].mean() > 0.2  # the shape is really there...
        covered[max(0, y1 - 1) : y2 + 1, max(0, x1 - 1) : x2 + 1] = True  # 1 px for anti-aliased edges
    assert changed[~covered].mean() < 0.002  # ...and nothing was drawn outside the boxes


def test_every_class_is_drawn() -> None:
    classes = np.concatenate([render_scene(i).classes for i in range(20)])
    assert set(classes.tolist()) == set(range(len(CLASS_NAMES)))


def test_a_complete_set_is_reused_and_a_damaged_one_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "set"
    data_yaml = write_demo_data(out, **SMALL)
    before = data_yaml.stat().st_mtime_ns
    assert write_demo_data(out, **SMALL) == data_yaml and data_yaml.stat().st_mtime_ns == before
    (out / "images/train/000002.jpg").unlink()
    write_demo_data(out, **SMALL)
    assert (out / "images/train/000002.jpg").is_file()
    assert not list(tmp_path.glob(".set.partial-*"))  # the temporary folder is gone


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo_set(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a yoloswap demo data set"):
        write_demo_data(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine/notes.txt").read_text() == "keep me"


def test_builtin_set_lives_under_yoloswap_home(tmp_path: Path, monkeypatch) -> None:
    written = []
    monkeypatch.setattr(synthetic, "write_demo_data", lambda out: written.append(out) or out / "data.yaml")
    monkeypatch.setenv("YOLOSWAP_HOME", str(tmp_path / "home"))
    assert builtin_data_yaml() == tmp_path / "home/builtin-v1/data.yaml"
    assert builtin_data_yaml(tmp_path / "elsewhere") == tmp_path / "elsewhere/data.yaml"
    assert written == [tmp_path / "home/builtin-v1", tmp_path / "elsewhere"]
