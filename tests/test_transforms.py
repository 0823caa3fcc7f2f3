"""Augmentation moves boxes exactly as it moves the pixels under them."""

from __future__ import annotations

import numpy as np
import pytest

from yoloswap.data import transforms as T
from yoloswap.errors import ConfigError

GREY = T.PAD_VALUE


def picture(w: int, h: int, rects: list[tuple[int, int, int, int]], colours: list[int] | None = None) -> np.ndarray:
    """Black (h, w, 3) image with filled rectangles (x1, y1, x2, y2, exclusive ends) in the given grey levels."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(rects):
        img[y1:y2, x1:x2] = colours[k] if colours else 255
    return img


def extent(mask: np.ndarray) -> list[int]:
    """Pixel-edge bounding box (x1, y1, x2, y2) of the True pixels."""
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def test_defaults_are_the_yolov5_recipe() -> None:
    aug = T.AugmentConfig()
    assert (aug.hsv_h, aug.hsv_s, aug.hsv_v) == (0.015, 0.7, 0.4)
    assert (aug.degrees, aug.translate, aug.scale, aug.shear) == (0.0, 0.1, 0.5, 0.0)
    assert (aug.fliplr, aug.mosaic) == (0.5, 1.0)


@pytest.mark.parametrize("bad", [{"fliplr": 1.5}, {"scale": -0.1}, {"mosaic": -1.0}, {"degrees": 400.0}])
def test_out_of_range_strengths_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        T.AugmentConfig(**bad)


def test_flip_moves_the_box_with_the_rectangle() -> None:
    img = picture(50, 30, [(5, 10, 20, 25)])
    flipped, out = T.hflip(img, boxes((5, 10, 20, 25)))
    assert extent(flipped[:, :, 0] > 0) == [30, 10, 45, 25]
    np.testing.assert_allclose(out, [[30, 10, 45, 25]])


@pytest.mark.parametrize("seed", range(5))
def test_random_affine_box_follows_the_object(seed: int) -> None:
    img = picture(64, 64, [(16, 20, 40, 44)])
    aug = T.AugmentConfig(translate=0.1, scale=0.3)
    out, moved, classes = T.random_affine(img, boxes((16, 20, 40, 44)), np.array([3]), np.random.default_rng(seed),
                                          aug, out_size=64)  # fmt: skip
    assert out.shape == (64, 64, 3) and classes.tolist() == [3]
    np.testing.assert_allclose(moved[0], extent(out[:, :, 0] > 127), atol=1.0)


def test_rotation_keeps_the_object_inside_its_box() -> None:
    img = picture(64, 64, [(20, 24, 44, 40)])
    aug = T.AugmentConfig(degrees=30.0, translate=0.0, scale=0.0, shear=5.0)
    out, moved, _ = T.random_affine(img, boxes((20, 24, 44, 40)), np.array([0]), np.random.default_rng(1), aug, 64)
    x1, y1, x2, y2 = extent(out[:, :, 0] > 127)
    bx1, by1, bx2, by2 = moved[0]
    assert bx1 <= x1 + 1 and by1 <= y1 + 1 and bx2 >= x2 - 1 and by2 >= y2 - 1


def test_boxes_pushed_out_of_the_picture_are_dropped() -> None:
    img = picture(64, 64, [(0, 0, 8, 8), (20, 20, 40, 40)])
    aug = T.AugmentConfig(translate=0.0, scale=0.0)
    # Output smaller than input and centred: the corner box falls outside, the central one stays.
    _, moved, classes = T.random_affine(img, boxes((0, 0, 8, 8), (20, 20, 40, 40)), np.array([0, 1]),
                                        np.random.default_rng(0), aug, out_size=32)  # fmt: skip
    assert classes.tolist() == [1]
    np.testing.assert_allclose(moved, [[4, 4, 24, 24]])


def test_keep_boxes_rules() -> None:
    before = boxes((0, 0, 20, 20), (0, 0, 20, 20), (0, 0, 20, 20), (0, 0, 40, 40))
    after = boxes((0, 0, 20, 20), (0, 0, 20, 1.5), (0, 0, 5, 5), (0, 0, 40, 1.9))
    # whole | too thin (<= 2 px) | only 6% of its area left | thin again
    assert T.keep_boxes(before, after).tolist() == [True, False, False, False]
    assert T.keep_boxes(boxes((0, 0, 10, 10)), boxes((0, 0, 40, 3)), area_gain=1.0).tolist() == [True]
    assert T.keep_boxes(boxes((0, 0, 10, 10)), boxes((0, 0, 100, 4.5))).tolist() == [False]  # aspect 22


def test_mosaic_boxes_stay_on_their_tiles() -> None:
    size = 64
    tiles = []
    for k in range(4):  # each tile: one rectangle in its own grey level, somewhere different
        x1, y1 = 4 + 10 * k, 8 + 6 * k
        rect = (x1, y1, x1 + 20, y1 + 16)
        tiles.append((picture(size, 48, [rect], [50 + 50 * k]), boxes(rect), np.array([k])))
    for seed in range(6):
        canvas, out, classes = T.mosaic4(tiles, np.random.default_rng(seed), size)
        assert canvas.shape == (2 * size, 2 * size, 3)
        for box, k in zip(out, classes):
            x1, y1, x2, y2 = np.round(box).astype(int)
            region = canvas[y1:y2, x1:x2, 0]
            assert region.size > 0 and (region == 50 + 50 * k).all()  # the box covers only its own rectangle
            visible = extent(canvas[:, :, 0] == 50 + 50 * k)
            np.testing.assert_allclose(box, visible, atol=0.5)


def test_letterbox_meta_maps_boxes_back() -> None:
    img = picture(200, 100, [(50, 20, 150, 80)])
    out, ratio, (left, top) = T.letterbox(img, 64)
    assert out.shape == (64, 64, 3) and ratio == pytest.approx(0.32)
    assert (left, top) == (0, 16) and (out[:16] == GREY).all() and (out[-16:] == GREY).all()
    x1, y1, x2, y2 = extent(out[:, :, 0] > 127)
    back = [(x1 - left) / ratio, (y1 - top) / ratio, (x2 - left) / ratio, (y2 - top) / ratio]
    np.testing.assert_allclose(back, [50, 20, 150, 80], atol=1 / ratio)


def test_resize_long_side() -> None:
    small, gain = T.resize_long_side(np.zeros((30, 60, 3), np.uint8), 120)
    assert small.shape == (60, 120, 3) and gain == 2.0
    big, gain = T.resize_long_side(np.zeros((300, 150, 3), np.uint8), 100)
    assert big.shape == (100, 50, 3) and gain == pytest.approx(1 / 3)


def test_hsv_changes_colour_not_geometry_and_is_seeded() -> None:
    img = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    a = T.augment_hsv(img, np.random.default_rng(5), 0.015, 0.7, 0.4)
    b = T.augment_hsv(img, np.random.default_rng(5), 0.015, 0.7, 0.4)
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, img)
    np.testing.assert_array_equal(T.augment_hsv(img, np.random.default_rng(5), 0, 0, 0), img)


class FixedGains:
    """Stands in for the generator: ``uniform`` returns fixed draws in [-1, 1] for (hue, saturation, value)."""

    def __init__(self, *draws: float) -> None:
        self.draws = np.array(draws)

    def uniform(self, low: float, high: float, size: int) -> np.ndarray:
        return self.draws[:size]


def test_hsv_turns_hue_around_the_circle_and_scales_value() -> None:
    img = np.array([[[200, 0, 0], [100, 100, 100]]], dtype=np.uint8)  # a red and a grey pixel
    # hue +1/6 of the circle (red → yellow), saturation unchanged, value × 1.1
    out = T.augment_hsv(img, FixedGains(0.5, 0.0, 0.25), hgain=1 / 3, sgain=0.7, vgain=0.4)
    np.testing.assert_allclose(out[0, 0], [220, 220, 0], atol=2)
    np.testing.assert_allclose(out[0, 1], [110, 110, 110], atol=1)  # grey has no hue: only brighter
    desaturated = T.augment_hsv(img, FixedGains(0.0, -1.0, 0.0), hgain=0.0, sgain=1.0, vgain=0.0)
    np.testing.assert_allclose(desaturated[0, 0], [200, 200, 200], atol=1)  # saturation × 0: grey of equal value
