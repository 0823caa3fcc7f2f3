"""Everything a training run was asked to do, as one frozen dataclass that travels in the run folder and checkpoints.

This module is the one home of the training defaults: the field defaults below are what a run on the user's own data
gets, :data:`BUILTIN_SET_DEFAULTS` the few that differ on the small built-in set, and :data:`HELP` the text the CLI
and the docs show for each option. Augmentation strengths live in one place too, :class:`AugmentConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from yoloswap.config.presets import ACT_SCOPES
from yoloswap.data.transforms import AugmentConfig
from yoloswap.device import usable_cpus
from yoloswap.errors import ConfigError, UsageError

OPTIMIZERS = ("auto", "sgd", "adamw")
BN_MODES = ("frozen", "eval", "train", "sync")  # backbones/freeze.py's apply_bn_mode applies them


@dataclass(frozen=True)
class TrainOptions:
    backbone: str = "yolov5s"
    data: str | None = None  # None: the built-in synthetic set
    epochs: int = 100
    time: float | None = None  # minutes of training; epochs are refitted to it after each epoch
    img_size: int = 640
    batch_size: int = 16
    nominal_batch: int = 64
    device: str = "auto"
    workers: int | None = None  # None: default_workers() of the machine
    seed: int = 0
    weights: str | None = None  # None: the preset's weights
    neck_width: Any = None  # None: the preset's; float or [c3, c4, c5]
    head: str | None = None  # None: the preset's (yolov5); yolov5 or yolov8
    optimizer: str = "auto"  # auto: training/optim.py's choose_optimizer; resolved before the run is recorded
    lr: float | None = None  # None: the chosen optimizer's recipe
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
    patience: int = 100  # stop after this many epochs without a better fitness; 0 = never
    logger: str = ""  # comma-separated experiment loggers (training/loggers.py LOGGERS); CSV is always written
    mlflow_uri: str | None = None  # None: a local mlruns/ file store
    ema: bool = True
    amp: bool = True
    compile: bool = False
    min_weights_fraction: float | None = None
    # Fine-tuning recipe (README, "Fine-tuning recipe"); resolved by training/setup.py's resolve_recipe and recorded.
    layer_decay: float = 1.0  # 1: no layer-wise decay
    freeze_backbone_epochs: int = 0
    bn: str | None = None  # None: the recipe rule (weights loaded: the preset's norm_eval; from scratch: train)
    # Activation and BatchNorm overrides (None: the preset's; backbones/overrides.py applies them)
    act: str | None = None
    act_scope: str | None = None  # backbone | all
    norm_momentum: float | None = None
    norm_eps: float | None = None
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
        if values.get("optimizer", "auto") is None:  # runs recorded before `auto` existed: the preset's recipe
            values["optimizer"] = "auto"
        return cls(**values)

    @classmethod
    def for_data(cls, data: str | None, given: dict[str, Any]) -> "TrainOptions":
        """The options of a run on ``data`` (None: the built-in set) with the options the user ``given`` (None =
        not given) over the defaults; ``augment.*`` keys (``hsv_h``, ``mosaic``…) go into :class:`AugmentConfig`.

        """
        values = {} if data else dict(BUILTIN_SET_DEFAULTS)
        values.update({k: v for k, v in given.items() if v is not None})
        aug_names = {f.name for f in dataclasses.fields(AugmentConfig)}
        augment = {k: values.pop(k) for k in list(values) if k in aug_names}
        return cls(data=data, augment=AugmentConfig(**augment), **values)

    def check(self) -> None:
        """Reject values that would only fail later, naming the option (a usage error: exit code 2)."""

        def bad(option: str, why: str):
            return UsageError(f"--{option.replace('_', '-')}: {why}")

        if self.epochs < 1:
            raise bad("epochs", f"must be at least 1, got {self.epochs}")
        if self.time is not None and self.time <= 0:
            raise bad("time", f"must be > 0 minutes, got {self.time}")
        if self.batch_size < 1:
            raise bad("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.nominal_batch < 1:
            raise bad("nominal_batch", f"must be at least 1, got {self.nominal_batch}")
        if self.img_size < 32 or self.img_size % 32:
            raise bad("img_size", f"must be a positive multiple of 32, got {self.img_size}")
        if self.workers is not None and self.workers < 0:
            raise bad("workers", f"must be >= 0, got {self.workers}")
        if self.lr is not None and self.lr <= 0:
            raise bad("lr", f"must be > 0, got {self.lr}")
        if self.val_interval < 1:
            raise bad("val_interval", f"must be at least 1, got {self.val_interval}")
        if self.patience < 0:
            raise bad("patience", f"must be >= 0 (0: never stop early), got {self.patience}")
        if self.close_mosaic < 0:
            raise bad("close_mosaic", f"must be >= 0, got {self.close_mosaic}")
        if self.backbone_lr_mult < 0:
            raise bad("backbone_lr_mult", f"must be >= 0, got {self.backbone_lr_mult}")
        if not 0 < self.layer_decay <= 1:
            raise bad("layer_decay", f"must be in (0, 1], got {self.layer_decay}")
        if self.freeze_backbone_epochs < 0:
            raise bad("freeze_backbone_epochs", f"must be >= 0, got {self.freeze_backbone_epochs}")
        if self.bn is not None and self.bn not in BN_MODES:
            raise bad("bn", f"must be one of {', '.join(BN_MODES)}, got {self.bn}")
        if self.act_scope is not None and self.act_scope not in ACT_SCOPES:
            raise bad("act_scope", f"must be one of {', '.join(ACT_SCOPES)}, got {self.act_scope}")
        if self.norm_momentum is not None and not 0 <= self.norm_momentum <= 1:
            raise bad("norm_momentum", f"must be in [0, 1], got {self.norm_momentum}")
        if self.norm_eps is not None and self.norm_eps <= 0:
            raise bad("norm_eps", f"must be > 0, got {self.norm_eps}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer}")


# The built-in set (320 training images of 256 px) has defaults of its own, so that README's main job (ConvNeXt-T
# from scratch with the yolov8 head) detects, mAP@.5 >= 0.3, on a 2-core CPU and on one core within 15 minutes
# (bench/RESULTS.md §9, where every figure below was measured, on one core):
# - budgeted by epochs, not by the clock: a wall-clock budget let a slower or busy machine stop after 1 epoch with a
#   detector that finds nothing; now a slow machine takes longer, and the log says how long after the first epoch;
# - 160 px: half the arithmetic of 224 px per image (about 50 s an epoch on one core instead of 100 s). With the
#   yolov8 head 16 epochs reach mAP@.5 0.31; with the yolov5 head 0.22 at 160 px and 0.28 at 192 px;
# - no stochastic depth: the preset's 0.4 is a regulariser of long fine-tuning runs (MMYOLO's);
# - no gradient accumulation (nominal batch 16, not 64): in such a short run every optimizer step counts
#   (measured: 5-minute yolov5n mAP@.5:.95 0.013 with a nominal batch of 64, 0.031 with 16; bench/learning.py).
# Mosaic stays on: without it ConvNeXt-T learnt sooner but ended no higher (yolov5 head 0.24 against 0.22, yolov8
# head the same by epoch 13). A user's data set gets the field defaults above: YOLOv5's 640 px, 100 epochs, nominal
# batch 64.
BUILTIN_SET_DEFAULTS: dict[str, Any] = {"img_size": 160, "epochs": 16, "nominal_batch": 16, "drop_path_rate": 0.0}
DETECTS_MAP50 = 0.3  # at the end of a run, mAP@.5 at or above this is reported as "detects"
MIN_LEARNING_EPOCHS = 5  # a --time budget that leaves fewer epochs than this is warned about: too few to learn

# What each option means, for `yoloswap train --help` and the README. Defaults are appended by the CLI from the
# dataclasses above, so no default is written twice.
HELP: dict[str, str] = {
    "backbone": "Preset name, preset YAML, timm:NAME or torchvision:NAME.",
    "data": "Data YAML (Ultralytics or COCO); without it, the built-in synthetic set.",
    "epochs": "Passes over the training data.",
    "time": "Minutes to train; after each epoch the epochs are refitted to the budget (up or down, never past "
            "--epochs).",
    "img_size": "Training size in pixels, a multiple of 32.",
    "batch_size": "Images per step. On a GPU, the largest that fits its memory (try 64 for yolov5s at 640 px on "
                  "80 GB, halve it per out-of-memory error); gradients accumulate up to --nominal-batch.",
    "nominal_batch": "Batch the recipe is tuned for: gradients accumulate to it (ramping up during warmup) and "
                     "weight decay scales with it.",
    "device": "auto, cpu, cuda or cuda:N.",
    "workers": "DataLoader worker processes per GPU (or per process on the CPU); default: up to 8, capped by "
               "the CPU count.",
    "seed": "Random seed (data order, augmentation, initialisation).",
    "weights": "Backbone weights (path, file:// or https:// URL, torchvision://, timm://, none) or a yoloswap "
               "checkpoint to fine-tune. Default: the preset's.",
    "neck_width": "Neck width: a multiplier of the probed channels, or c3,c4,c5.",
    "optimizer": "auto, sgd or adamw. auto: AdamW for runs of at most 10,000 optimizer steps, else the preset's "
                 "recipe (see README, Training recipe).",
    "lr": "Base learning rate. Given without --optimizer, the preset's optimizer trains with it.",
    "weight_decay": "Weight decay at the nominal batch (default: the preset's).",
    "lrf": "Final learning rate as a fraction of the base lr.",
    "cos_lr": "Cosine instead of linear learning-rate decay.",
    "warmup_epochs": "Epochs of learning-rate, momentum and accumulation warmup (at least 100 steps, at most "
                     "half the run).",
    "backbone_lr_mult": "Backbone lr = lr × this (0 trains the backbone not at all).",
    "frozen_stages": "Freeze the stem and the first N backbone stages (default: the preset's).",
    "norm_eval": "Freeze the backbone's BatchNorm statistics (default: the preset's).",
    "act": "Activation for every layer of the backbone (with --act-scope all: neck and head too): relu, relu6, "
           "silu, hardswish, gelu, leakyrelu, mish, elu (default: the preset's, else the model's own).",
    "act_scope": "Where --act and --norm-* apply: backbone (default) or all (backbone, neck and head).",
    "norm_momentum": "BatchNorm momentum for every BatchNorm in --act-scope (default: the model's own).",
    "norm_eps": "BatchNorm eps for every BatchNorm in --act-scope (default: the model's own).",
    "drop_path_rate": "Stochastic depth rate of transformer and ConvNeXt backbones (default: the preset's).",
    "head": "Detection head: yolov5 (anchor-based, YOLOv5's) or yolov8 (anchor-free, task-aligned, DFL; "
            "learns faster in short runs). Default: the preset's (yolov5).",
    "autoanchor": "Check the yolov5 head's anchors on the training boxes before training; evolve them when "
                  "their recall is below 0.98.",
    "close_mosaic": "Turn mosaic off for the last N epochs, but for at most a quarter of the run.",
    "val_interval": "Evaluate every N epochs (and after the last).",
    "logger": "Experiment loggers besides metrics.csv, comma-separated: tensorboard (RUN/tensorboard/), mlflow.",
    "mlflow_uri": "MLflow tracking URI for --logger mlflow, or a local folder (default mlruns/: an SQLite store and artifacts/).",
    "patience": "Stop early when the fitness (0.9 mAP@.5:.95 + 0.1 mAP@.5) has not improved for N epochs; 0: never.",
    "ema": "Keep an exponential moving average of the weights and evaluate it.",
    "amp": "Mixed precision: on CUDA bf16 where supported, else fp16; on a CPU with native bf16 (AVX512-BF16, "
           "AMX) bf16, else fp32.",
    "compile": "Compile the model with torch.compile (slow first steps; may speed up long GPU runs).",
    "min_weights_fraction": "Stop unless this fraction of the backbone's tensors loaded (default 1.0).",
    "layer_decay": "Layer-wise lr decay R: a backbone stage d stages below the top trains at lr × R^d (top stage "
                   "d=1, stem d=5); neck and head at full lr. 1 = off; ConvNeXt's detection recipe uses 0.8-0.95.",
    "freeze_backbone_epochs": "Freeze the whole backbone for the first N epochs (neck and head train), then "
                              "unfreeze it with its own lr warmup.",
    "bn": "Backbone BatchNorm: frozen (statistics and affine fixed, torchvision detection's FrozenBatchNorm2d), "
          "eval (statistics fixed, = --norm-eval), train, or sync (SyncBatchNorm under torchrun). Default: with "
          "loaded weights the preset's norm_eval (eval or train); from scratch train.",
    "mosaic": "Probability of a 4-image mosaic.",
    "degrees": "Maximum rotation in degrees.",
    "translate": "Maximum shift as a fraction of the image side.",
    "scale": "Zoom range: 1 ± scale.",
    "shear": "Maximum shear in degrees.",
    "fliplr": "Probability of a left-right flip.",
    "hsv_h": "Maximum hue change (fraction of the colour circle).",
    "hsv_s": "Maximum saturation change (fraction).",
    "hsv_v": "Maximum value (brightness) change (fraction).",
}


def default_of(name: str) -> Any:
    """The default of a training option (or of an augmentation strength), as the dataclasses define it."""
    for cls in (TrainOptions, AugmentConfig):
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.default if f.default is not dataclasses.MISSING else f.default_factory()
    raise KeyError(name)


def option_names() -> set[str]:
    """Every training option's Python name: the fields of :class:`TrainOptions` (but ``data`` and the nested
    ``augment``, given separately) and of :class:`AugmentConfig` (given flat, as on the command line)."""
    names = {f.name for f in dataclasses.fields(TrainOptions)} - {"data", "augment"}
    return names | {f.name for f in dataclasses.fields(AugmentConfig)}


def default_workers(processes_per_machine: int = 1) -> int:
    """DataLoader workers per process as Ultralytics picks them: up to 8, the machine's CPUs shared out."""
    return max(min(8, usable_cpus() // max(processes_per_machine, 1)), 0)
