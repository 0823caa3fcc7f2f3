"""The torch side: items, collate and a reproducible DataLoader whose labels stay on the objects."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from yoloswap.data import dataset as dataset_module
from yoloswap.data.dataset import MOSAIC_BUFFER, DetectionDataset, build_dataloader, collate
from yoloswap.data.formats import Sample
from yoloswap.data.images import read_image
from yoloswap.data.transforms import AugmentConfig
from yoloswap.errors import ConfigError

PALETTE = [(230, 40, 40), (40, 230, 40), (40, 40, 230)]  # class k is always drawn in PALETTE[k]
STILL = dict(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0, scale=0.0, fliplr=0.0)  # augmentation that moves nothing


def make_samples(tmp_path: Path, n: int = 6) -> list[Sample]:
    """n PNGs of varied shapes, each with one or two solid rectangles on black (top-left, bottom-right)."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        w, h = int(rng.integers(64, 120)), int(rng.integers(64, 120))
        img = np.zeros((h, w, 3), np.uint8)
        bxs, cls = [], []
        for k in range(1 + i % 2):
            bw, bh = int(rng.integers(15, 30)), int(rng.integers(15, 30))
            x1 = int(rng.integers(0, w // 2 - bw)) if k == 0 else w - bw - 2
            y1 = int(rng.integers(0, h // 2 - bh)) if k == 0 else h - bh - 2
            c = (i + k) % 3
            img[y1 : y1 + bh, x1 : x1 + bw] = PALETTE[c]
            bxs.append((x1, y1, x1 + bw, y1 + bh))
            cls.append(c)
        path = tmp_path / f"{i}.png"
        Image.fromarray(img).save(path)
        samples.append(Sample(path, 100 + i, w, h, np.array(bxs, np.float32), np.array(cls, np.int64),
                              np.zeros(len(cls), bool)))  # fmt: skip
    return samples


def cxcywh_to_xyxy(labels: torch.Tensor) -> np.ndarray:
    cx, cy, w, h = labels[:, 1:].numpy().T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def test_eval_item_is_letterboxed_and_its_meta_maps_back(tmp_path: Path) -> None:
    img = np.zeros((40, 80, 3), np.uint8)
    img[5:25, 10:30] = PALETTE[2]
    Image.fromarray(img).save(tmp_path / "x.png")
    sample = Sample(tmp_path / "x.png", 7, 80, 40, np.array([[10, 5, 30, 25], [0, 0, 80, 40]], np.float32),
                    np.array([2, 1]), np.array([False, True]))  # fmt: skip
    image, labels, meta = DetectionDataset([sample], 64, augment=False)[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
    assert meta["image_id"] == 7 and meta["orig_size"] == (40, 80) and meta["path"].endswith("x.png")
    assert meta["ratio"] == pytest.approx(0.8) and meta["pad"] == (0, 16)
    assert labels.dtype == torch.float32 and labels.shape == (1, 5)  # the crowd box is not a label
    np.testing.assert_allclose(labels[0].numpy(), [2, 16, 28, 16, 16], atol=1e-4)
    x1, y1, x2, y2 = cxcywh_to_xyxy(labels)[0]
    (left, top), r = meta["pad"], meta["ratio"]
    np.testing.assert_allclose([(x1 - left) / r, (y1 - top) / r, (x2 - left) / r, (y2 - top) / r], [10, 5, 30, 25])
    assert image[:, :16].eq(114).all() and image[:, -16:].eq(114).all()  # grey bars above and below


@pytest.mark.parametrize(("mosaic", "buffer_size"), [(0.0, MOSAIC_BUFFER), (1.0, MOSAIC_BUFFER), (1.0, 2), (1.0, 0)])
def test_training_labels_sit_on_the_objects(tmp_path: Path, mosaic: float, buffer_size: int) -> None:
    """Mosaic + affine + flip: every label box lies on pixels of its own class's colour, also when the mosaic's
    images come from the buffer of recently decoded ones (which must come out of it unchanged)."""
    aug = AugmentConfig(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, mosaic=mosaic, scale=0.4, translate=0.1)
    ds = DetectionDataset(make_samples(tmp_path), 64, augment=True, aug=aug, seed=1, buffer_size=buffer_size)
    seen = 0
    for _ in range(3):
        for i in range(len(ds)):
            image, labels, _ = ds[i]
            assert image.shape == (3, 64, 64)
            pixels = image.permute(1, 2, 0).numpy().astype(int)  # (S, S, 3)
            for (x1, y1, x2, y2), cls in zip(cxcywh_to_xyxy(labels), labels[:, 0].int().tolist()):
                assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
                inner = pixels[int(np.ceil(y1)) + 1 : int(y2) - 1, int(np.ceil(x1)) + 1 : int(x2) - 1]
                if inner.size:
                    close = np.abs(inner - np.array(PALETTE[cls])).max(axis=2) < 40
                    assert close.mean() > 0.9
                    seen += 1
    assert seen > 10


def test_collate_stacks_images_and_prefixes_batch_index(tmp_path: Path) -> None:
    ds = DetectionDataset(make_samples(tmp_path, 3), 64, augment=False)
    images, targets, metas = collate([ds[0], ds[1], ds[2]])
    assert images.shape == (3, 3, 64, 64) and images.dtype == torch.uint8
    assert images.is_contiguous(memory_format=torch.channels_last)  # the model's layout: no transpose on the way
    for i in range(3):
        assert torch.equal(images[i], ds[i][0])
    assert targets.shape == (1 + 2 + 1, 6) and targets.dtype == torch.float32
    assert targets[:, 0].tolist() == [0, 1, 1, 2]
    assert [m["image_id"] for m in metas] == [100, 101, 102]


def test_loader_batches_and_repeats_with_the_same_seed(tmp_path: Path) -> None:
    ds = DetectionDataset(make_samples(tmp_path), 64, augment=True, buffer_size=2)  # partners from the buffer

    def run(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(im, tg) for im, tg, _ in build_dataloader(ds, 4, shuffle=True, workers=0, seed=seed)]

    first, again, other = run(3), run(3), run(4)
    assert [im.shape[0] for im, _ in first] == [4, 2]
    assert first[0][0].shape == (4, 3, 64, 64) and first[0][1].shape[1] == 6
    for (a, ta), (b, tb) in zip(first, again):
        assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(first[0][0], other[0][0])
    assert len(build_dataloader(ds, 4, shuffle=False, workers=0, seed=0, drop_last=True)) == 1


def test_switching_mosaic_off_reaches_persistent_workers(tmp_path: Path) -> None:
    samples = make_samples(tmp_path)
    ds = DetectionDataset(samples, 64, augment=True, aug=AugmentConfig(**STILL, mosaic=1.0))
    plain = DetectionDataset(samples, 64, augment=False)
    loader = build_dataloader(ds, 3, shuffle=False, workers=2, seed=0)
    assert loader.persistent_workers

    def matches_plain() -> list[bool]:
        return [
            torch.equal(img, plain[i][0]) for k, (batch, _, _) in enumerate(loader) for i, img in
            zip(range(3 * k, 3 * k + 3), batch)
        ]  # fmt: skip

    assert not all(matches_plain())  # mosaic on: four images per item
    ds.mosaic_enabled = False
    assert all(matches_plain())  # mosaic off, nothing else moves: the plain letterboxed image


def test_workers_give_the_same_batches_for_the_same_seed(tmp_path: Path) -> None:
    ds = DetectionDataset(make_samples(tmp_path), 64, augment=True)
    runs = []
    for _ in range(2):
        loader = build_dataloader(ds, 2, shuffle=True, workers=2, seed=9)
        runs.append([(im, tg) for im, tg, _ in loader])
        del loader
    assert len(runs[0]) == len(runs[1]) == -(-len(ds) // 2) > 0  # every batch, both times
    for (a, ta), (b, tb) in zip(*runs):
        assert torch.equal(a, b) and torch.equal(ta, tb)


def test_training_items_are_uint8_channel_first_with_float_labels(tmp_path: Path) -> None:
    ds = DetectionDataset(make_samples(tmp_path), 64, augment=True, seed=0)
    for i in range(len(ds)):
        image, labels, meta = ds[i]
        assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
        assert labels.dtype == torch.float32 and labels.ndim == 2 and labels.shape[1] == 5
        assert meta["image_id"] == 100 + i


def count_decodes(monkeypatch) -> list:
    """Record every file the dataset decodes."""
    decoded = []
    real = dataset_module.read_image

    def counting(path, **kwargs):
        decoded.append((path, kwargs.get("reduce", 1)))
        return real(path, **kwargs)

    monkeypatch.setattr(dataset_module, "read_image", counting)
    return decoded


def test_a_full_buffer_leaves_one_decode_per_mosaic(tmp_path: Path, monkeypatch) -> None:
    decoded = count_decodes(monkeypatch)
    ds = DetectionDataset(make_samples(tmp_path), 64, augment=True, aug=AugmentConfig(mosaic=1.0), buffer_size=3)
    ds[0]
    # While the buffer fills: the item's own image, then three drawn from the whole set (one may repeat).
    assert decoded[0][0].name == "0.png" and 2 <= len(decoded) <= 4
    for i in range(1, len(ds)):
        before = len(decoded)
        ds[i]
        assert len(decoded) - before <= 1  # partners now come from the buffer; at most the item's own image
        assert len(ds._buffer) == 3
    unbuffered = DetectionDataset(ds.samples, 64, augment=True, aug=AugmentConfig(mosaic=1.0), buffer_size=0)
    before = len(decoded)
    unbuffered[0]
    assert len(decoded) - before == 4 and not unbuffered._buffer


def test_worker_copies_and_reseeds_start_with_an_empty_buffer(tmp_path: Path) -> None:
    ds = DetectionDataset(make_samples(tmp_path), 64, augment=True, seed=3)
    first = ds[0][0]
    assert ds._buffer
    copy = pickle.loads(pickle.dumps(ds))  # what a DataLoader worker receives
    assert not copy._buffer
    copy.reseed(3)
    assert torch.equal(copy[0][0], first)
    ds.reseed(3)
    assert not ds._buffer and torch.equal(ds[0][0], first)


def test_negative_buffer_size_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="buffer"):
        DetectionDataset(make_samples(tmp_path, 1), 64, augment=True, buffer_size=-1)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_decoding_matches_pil_in_every_exif_orientation(tmp_path: Path, suffix: str, mode: str) -> None:
    """The fast decode path orients pixels exactly as PIL's exif_transpose (the frame the labels were made in)."""
    pixels = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)  # not symmetric
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"{mode}{orientation}{suffix}"
        Image.fromarray(pixels).convert(mode).save(path, exif=exif)
        with Image.open(path) as im:
            expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            stored = np.asarray(im.convert("RGB"))
        np.testing.assert_array_equal(read_image(path), expected)
        np.testing.assert_array_equal(read_image(path, apply_exif=False), stored)


def test_big_jpegs_decode_reduced_for_training_and_in_full_for_evaluation(tmp_path: Path, monkeypatch) -> None:
    """Trained at 64 px, a 410x300 JPEG decodes at 1/4 (103x75, still above 64) and shows the same picture as a
    full decode; evaluation decodes in full, so its pixels match predict's."""
    img = np.zeros((300, 410, 3), np.uint8)
    img[60:180, 100:300] = PALETTE[1]
    Image.fromarray(img).save(tmp_path / "big.jpg", quality=95)
    sample = Sample(tmp_path / "big.jpg", 1, 410, 300, np.array([[100, 60, 300, 180]], np.float32), np.array([1]),
                    np.zeros(1, bool))  # fmt: skip
    decoded = count_decodes(monkeypatch)
    train = DetectionDataset([sample], 64, augment=True, buffer_size=0)
    reduced, ratio = train._load(sample)
    full, _ = train._load(sample, reduce=1)
    assert [r for _, r in decoded] == [4, 1]
    assert reduced.shape == full.shape == (47, 64, 3) and ratio == pytest.approx(64 / 410)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 3
    DetectionDataset([sample], 64, augment=False)[0]
    assert decoded[-1][1] == 1
    image, labels, _ = DetectionDataset([sample], 64, augment=True, aug=AugmentConfig(**STILL, mosaic=0.0))[0]
    (x1, y1, x2, y2), = cxcywh_to_xyxy(labels)
    inner = image.permute(1, 2, 0).numpy()[int(y1) + 1 : int(y2) - 1, int(x1) + 1 : int(x2) - 1].astype(int)
    assert (np.abs(inner - np.array(PALETTE[1])).max(axis=2) < 40).mean() > 0.95


@pytest.mark.slow
@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_workers_end_quietly_when_the_training_process_is_killed(tmp_path: Path) -> None:
    """`kill -9` of the training process: its DataLoader workers go at once, printing nothing (no
    ConnectionResetError from a worker handing a batch to a parent that is gone)."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = tmp_path / "feed.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from tests.test_dataset import make_samples
        from yoloswap.data.dataset import DetectionDataset, build_dataloader
        from pathlib import Path
        ds = DetectionDataset(make_samples(Path({str(tmp_path)!r})), 64, augment=True)
        it = iter(build_dataloader(ds, 2, True, 2, 0))
        next(it)
        print(" ".join(str(w.pid) for w in it._workers), flush=True)
        time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] not in ("Z", "X")
        except (FileNotFoundError, IndexError):
            return False

    deadline = time.monotonic() + 3
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in workers)  # gone within 3 s (PyTorch's own watchdog takes 5 s or more)
    assert proc.stderr.read().strip() == ""
