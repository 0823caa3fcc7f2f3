"""Everything a training run was asked to do, as one frozen dataclass that travels in the run folder and checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from yoloswap.data.transforms import AugmentConfig
from yoloswap.errors import ConfigError


@dataclass(frozen=True)
class TrainOptions:
    backbone: str = "yolov5s"
    data: str | None = None  # None: the built-in synthetic set
    epochs: int = 30
    time: float | None = None  # minutes of training; epochs are refitted to it after the first epoch
    img_size: int = 640
    batch_size: int = 16
    nominal_batch: int = 64
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    weights: str | None = None  # None: the preset's weights
    neck_width: Any = None  # None: the preset's; float or [c3, c4, c5]
    head: str | None = None  # None: the preset's (yolov5); yolov5 or yolov8
    optimizer: str | None = None  # None: the preset's recommendation
    lr: float | None = None
    weight_decay: float | None = None
    lrf: float = 0.01
    cos_lr: bool = False
    warmup_epochs: float = 3.0
    backbone_lr_mult: float = 1.0
    frozen_stages: int | None = None
    norm_eval: bool | None = None
    drop_path_rate: float | None = None
    close_mosaic: int = 10
    autoanchor: bool = True  # check (and if needed evolve) the yolov5 head's anchors on the training boxes
    val_interval: int = 1
    ema: bool = True
    amp: bool = True
    min_weights_fraction: float | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.neck_width, tuple):
            d["neck_width"] = list(self.neck_width)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainOptions":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training option(s) {sorted(unknown)}")
        values = dict(data)
        values["augment"] = AugmentConfig(**values.get("augment", {}))
        if isinstance(values.get("neck_width"), list):
            values["neck_width"] = tuple(values["neck_width"])
        return cls(**values)

    def check(self) -> None:
        """Reject values that would only fail later, naming the option."""

        def bad(option: str, why: str):
            return ConfigError(f"--{option.replace('_', '-')}: {why}")

        if self.epochs < 1:
            raise bad("epochs", f"must be at least 1, got {self.epochs}")
        if self.time is not None and self.time <= 0:
            raise bad("time", f"must be > 0 minutes, got {self.time}")
        if self.batch_size < 1:
            raise bad("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.img_size < 32 or self.img_size % 32:
            raise bad("img_size", f"must be a positive multiple of 32, got {self.img_size}")
        if self.workers < 0:
            raise bad("workers", f"must be >= 0, got {self.workers}")
        if self.lr is not None and self.lr <= 0:
            raise bad("lr", f"must be > 0, got {self.lr}")
        if self.val_interval < 1:
            raise bad("val_interval", f"must be at least 1, got {self.val_interval}")
        if self.backbone_lr_mult < 0:
            raise bad("backbone_lr_mult", f"must be >= 0, got {self.backbone_lr_mult}")
        if self.optimizer is not None and self.optimizer not in ("sgd", "adamw"):
            raise bad("optimizer", f"must be sgd or adamw, got {self.optimizer}")
