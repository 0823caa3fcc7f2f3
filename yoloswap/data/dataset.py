"""Samples → tensors: the torch Dataset, its collate function and a reproducible DataLoader.

Training items go through mosaic (with probability ``aug.mosaic``) or a single letterboxed image, then random
affine, HSV and flip (see :mod:`yoloswap.data.transforms`). Evaluation items are only letterboxed, and their
``meta`` says how to map predictions back onto the original image.

Speed matters here: one training step needs a batch of these, built on the CPU. Images stay (H, W, 3) uint8 from
decode to collate, and a batch is stacked in that layout, so it reaches the model as channels_last with no
transpose anywhere. A mosaic needs four images; like Ultralytics, the three extra ones come from a buffer of recently
decoded images (see :class:`DetectionDataset`), so each item decodes about one file instead of four.
"""

from __future__ import annotations

import signal
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from yoloswap.data import transforms as T
from yoloswap.data.formats import Sample
from yoloswap.data.images import read_image
from yoloswap.errors import ConfigError, DataError
from yoloswap.procs import die_with_parent


MOSAIC_BUFFER = 128  # recently decoded images kept per dataset copy (per DataLoader worker) for mosaic partners


class DetectionDataset(Dataset):
    """Items ``(image uint8 (3, S, S) RGB, labels float32 (n, 5) [cls, cx, cy, w, h] pixels, meta)``.

    The image is a channels-last view of an (S, S, 3) array (``image.permute(1, 2, 0)`` is contiguous).

    ``meta``: ``image_id``, ``path``, ``orig_size`` (h, w), ``ratio`` and ``pad`` (left, top); for an evaluation
    item ``x_orig = (x - pad_left) / ratio``. Crowd boxes never appear in ``labels``.

    ``mosaic_enabled`` lives in shared memory so that switching mosaic off for the last epochs also reaches
    persistent DataLoader workers (which hold their own copy of the dataset). Set it before starting the epoch.

    Mosaic partners: each training item keeps its decoded, resized image in a buffer of the last ``buffer_size``
    images (per copy of the dataset, so per worker). While the buffer fills, the three partners of a mosaic are
    drawn uniformly from the whole data set (and enter the buffer); once it is full they are drawn uniformly from
    the buffer, as Ultralytics does. Items come in shuffled order, so a partner is still a uniformly random image
    of the set, but it is rarely decoded again. A data set no larger than the buffer ends up fully cached, so
    ``buffer_size=len(samples)`` is a RAM cache (in every worker); ``buffer_size=0`` decodes every partner.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        img_size: int,
        augment: bool,
        aug: T.AugmentConfig | None = None,
        seed: int = 0,
        buffer_size: int = MOSAIC_BUFFER,
    ) -> None:
        if not samples:
            raise DataError("the data set has no images")
        if img_size <= 0:
            raise ConfigError(f"image size must be positive, got {img_size}")
        if buffer_size < 0:
            raise ConfigError(f"mosaic buffer size must be >= 0, got {buffer_size}")
        self.samples = tuple(samples)
        self.img_size = img_size
        self.augment = augment
        self.aug = aug if aug is not None else T.AugmentConfig()
        self.buffer_size = min(buffer_size, len(self.samples))
        self._buffer: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = OrderedDict()
        self._mosaic_flag = torch.ones(1, dtype=torch.bool).share_memory_()
        self.reseed(seed)

    @property
    def mosaic_enabled(self) -> bool:
        return bool(self._mosaic_flag.item())

    @mosaic_enabled.setter
    def mosaic_enabled(self, value: bool) -> None:
        self._mosaic_flag.fill_(bool(value))

    def reseed(self, seed: int) -> None:
        """Restart this copy's augmentation: its random stream (each DataLoader worker gets its own seed) and its
        mosaic buffer, whose contents decide partners and so must repeat with the seed too."""
        self.rng = np.random.default_rng(seed)
        self._buffer.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_buffer"] = OrderedDict()  # workers start empty; decoded images are not worth pickling
        return state

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        sample = self.samples[index]
        if self.augment:
            img, boxes, classes, ratio, pad = self._train_item(index)
        else:
            resized, ratio = self._load(sample, reduce=1)  # full decode: the same pixels as predict
            img, pad = T.pad_to_square(resized, self.img_size)
            keep = ~sample.crowd
            boxes = sample.boxes[keep] * ratio + np.array([pad[0], pad[1], pad[0], pad[1]], dtype=np.float32)
            classes = sample.classes[keep]
        labels = np.concatenate([classes[:, None].astype(np.float32), T.xyxy_to_cxcywh(boxes)], axis=1)  # (n, 5)
        meta = {
            "image_id": sample.image_id,
            "path": str(sample.path),
            "orig_size": (sample.height, sample.width),
            "ratio": ratio,
            "pad": pad,
        }
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)  # (3, S, S) uint8, a view of (S, S, 3)
        return image, torch.from_numpy(labels.astype(np.float32).reshape(-1, 5)), meta

    def _load(self, sample: Sample, reduce: int | None = None) -> tuple[np.ndarray, float]:
        """Decode and resize so the long side is ``img_size``; returns the image and the gain.

        A JPEG at least twice as large as needed is decoded at 1/2, 1/4 or 1/8 of its size (never below
        ``img_size``) unless ``reduce`` says otherwise: a 4000 px photo trained at 640 decodes several times faster.
        """
        w, h = sample.width, sample.height
        ratio = self.img_size / max(w, h)
        if reduce is None:  # the largest decode-time reduction that still leaves at least img_size
            reduce = max((r for r in (2, 4, 8) if r * ratio <= 1.0), default=1)
        img = read_image(sample.path, apply_exif=sample.apply_exif, reduce=reduce)
        if img.shape[:2] not in ((h, w), (-(-h // reduce), -(-w // reduce))):
            scaled = f" (decoded at 1/{reduce})" if reduce > 1 else ""
            raise DataError(
                f"{sample.path}: image is {img.shape[1]}x{img.shape[0]}{scaled} but was {w}x{h} "
                "when the data set was scanned; delete the label cache and retry"
            )
        return T.resize_to(img, *T.long_side_size(w, h, self.img_size)), ratio

    def _load_targets(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Resized image with its non-crowd boxes scaled to match, from the mosaic buffer when it is there.

        Callers must not write into the returned arrays: they may be shared with later items.
        """
        if index in self._buffer:
            return self._buffer[index]
        sample = self.samples[index]
        img, ratio = self._load(sample)
        keep = ~sample.crowd
        item = img, sample.boxes[keep] * np.float32(ratio), sample.classes[keep], ratio
        if self.buffer_size:
            self._buffer[index] = item
            if len(self._buffer) > self.buffer_size:
                self._buffer.popitem(last=False)  # the oldest
        return item

    def _mosaic_partners(self) -> list[int]:
        """Three images to join the item's own: from the whole set while the buffer fills, then from the buffer."""
        if self.buffer_size and len(self._buffer) >= self.buffer_size:
            keys = list(self._buffer)
            return [keys[k] for k in self.rng.integers(0, len(keys), size=3).tolist()]
        return self.rng.integers(0, len(self.samples), size=3).tolist()

    def _train_item(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, tuple[int, int]]:
        size, aug, rng = self.img_size, self.aug, self.rng
        if self.mosaic_enabled and rng.random() < aug.mosaic:
            tiles = [self._load_targets(index)[:3]]  # the item's own image first, so it is in the buffer
            tiles += [self._load_targets(i)[:3] for i in self._mosaic_partners()]
            img, boxes, classes = T.mosaic4(tiles, rng, size)  # (2S, 2S, 3)
            ratio, pad = self._load_ratio(index), (0, 0)  # meta only; mosaic items are not mapped back
        else:
            resized, boxes, classes, ratio = self._load_targets(index)
            img, pad = T.pad_to_square(resized, size)
            boxes = boxes + np.array([pad[0], pad[1], pad[0], pad[1]], dtype=np.float32)
        img, boxes, classes = T.random_affine(img, boxes, classes, rng, aug, size)  # (S, S, 3)
        img = T.augment_hsv(img, rng, aug.hsv_h, aug.hsv_s, aug.hsv_v)
        if rng.random() < aug.fliplr:
            img, boxes = T.hflip(img, boxes)
        return img, boxes, classes, ratio, pad

    def _load_ratio(self, index: int) -> float:
        s = self.samples[index]
        return self.img_size / max(s.width, s.height)


def collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Stack images to (B, 3, S, S) uint8 and labels to (M, 6) float32 ``[batch_idx, cls, cx, cy, w, h]``.

    The images are stacked as (B, S, S, 3), one plain copy per item, and returned as a (B, 3, S, S) view of that:
    channels_last memory, the layout the model runs in. ``default_collate`` does the stacking because inside a
    DataLoader worker it builds the batch straight in shared memory, which saves a copy on the way to the trainer.
    """
    images = default_collate([item[0].permute(1, 2, 0) for item in batch]).permute(0, 3, 1, 2)  # (B, 3, S, S)
    targets = [
        torch.cat([torch.full((len(labels), 1), float(i)), labels], dim=1)  # (n_i, 6)
        for i, (_, labels, _) in enumerate(batch)
    ]
    return images, torch.cat(targets).reshape(-1, 6), [item[2] for item in batch]


def _seed_worker(worker_id: int) -> None:
    """Give each worker's dataset copy its own stream, derived from the loader's seeded generator; and end the
    worker, silently, if the training process is killed (it has nothing to save)."""
    die_with_parent(signal.SIGKILL)
    info = get_worker_info()
    assert info is not None
    info.dataset.reseed(info.seed % 2**63)


def build_dataloader(
    dataset: DetectionDataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader whose order and augmentation repeat exactly for the same ``seed`` and worker count.

    Workers are persistent (no re-fork and re-pickling of the samples each epoch). Pass a ``sampler`` (e.g. a
    ``DistributedSampler``) instead of ``shuffle`` under DDP; give each rank a different ``seed``.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    if workers == 0:
        dataset.reseed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=workers > 0,
        worker_init_fn=_seed_worker if workers > 0 else None,
        generator=generator,
    )

