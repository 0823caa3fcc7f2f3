"""Set-up of a run, one function per part: data (splits, datasets, loaders), model (preset, probe, weights,
anchors, freezing), precision (measured on the CPU), optimization (optimizer, schedule, accumulation). ``build_run``
calls them in that order and returns the :class:`~yoloswap.training.state.Run` the loop trains.

Everything is validated and built before the run folder exists, so a start that fails leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoloswap.assembly import DetectorPlan, build_detector, detector_from_plan
from yoloswap.backbones.sources import build_backbone
from yoloswap.config.options import TrainOptions, default_workers
from yoloswap.config.presets import NormOverride
from yoloswap.device import resolve_device
from yoloswap.errors import BackboneOnlyFile, CheckpointError, UsageError
from yoloswap.foreign_detector import read_detector_file
from yoloswap.models.depthwise import use_fast_depthwise_backward
from yoloswap.training import cpu_conv_guard, cpu_memory, distributed
from yoloswap.training.ema import ModelEMA
from yoloswap.training.precision import DTYPES, amp_dtype_for, cpu_precision, seconds_per_step
from yoloswap.training.schedule import Schedule
from yoloswap.training.state import Run, restore

VAL_BATCH_MULT = 2  # validation needs no gradients: twice the training batch fits


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Data:
    """The data side of a run: loaders over the two splits, the class names and the training samples."""

    train_loader: Any
    val_loader: Any
    names: list[str]
    category_ids: list[int] | None
    train_samples: tuple
    per_rank_batch: int


def build_run(options: TrainOptions, out: Path, log=print, resume_ckpt: dict | None = None,
              dist: distributed.Dist = distributed.Dist()) -> tuple[Run, Any]:
    """Model, data, optimizer and schedule for ``options``; restored from ``resume_ckpt`` when given."""
    options.check()
    if options.workers is None:
        workers = default_workers(int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size)))
        options = dataclasses.replace(options, workers=workers)
    seed_everything(options.seed)
    device = resolve_device(options.device)
    if device.type == "meta":
        raise UsageError("--device meta cannot train; use cpu or cuda")
    device = distributed.setup(dist, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels once

    data = build_data(options, dist, log)  # read and validated before any model work: label errors stop at once
    if options.data:  # recorded absolute, so val, predict, export and --resume find it from any folder
        options = dataclasses.replace(options, data=os.path.abspath(os.path.expanduser(options.data)))
    model, preset, plan, weights_report = build_model(options, data, resume_ckpt, dist, log)
    if resume_ckpt is None and options.weights and preset.path == str(options.weights):
        # a detector file chose the architecture: config.yaml records that one, not the --backbone default
        options = dataclasses.replace(options, backbone=preset.name, head=preset.head)
    options = resolve_recipe(options, preset, dist, log)
    from yoloswap.backbones.freeze import apply_bn_mode

    apply_bn_mode(model.backbone, options.bn)
    model.to(device, memory_format=torch.channels_last)  # faster convolutions on both CPU and GPU
    if device.type == "cpu":
        guard_cpu = cpu_conv_guard.guard_cpu_convolutions(model)  # a few stem convolutions stay in NCHW
        if guard_cpu:
            log(cpu_conv_guard.describe(guard_cpu))
        use_fast_depthwise_backward(model)  # oneDNN's depthwise backward is slow: same gradients by a faster route
        cpu_memory.keep_freed_memory()  # each step reuses the last step's memory instead of faulting in new pages
    amp_dtype = choose_precision(model, preset, plan, options, device, data.per_rank_batch, resume_ckpt, dist, log)
    run = build_optimization(options, out, preset, plan, model, data, device, amp_dtype, dist)
    run.weights_report = weights_report.to_dict() if weights_report is not None else None
    if resume_ckpt is not None:
        restore(run, resume_ckpt)
    return run, (data.train_loader, data.val_loader)


def build_data(options: TrainOptions, dist: distributed.Dist, log) -> Data:
    """The splits of ``--data`` (the built-in set without it) as letterboxing datasets and their loaders; under
    torchrun each rank sees its own shard and ``--batch-size`` is the total over all ranks."""
    from yoloswap.data.dataset import DetectionDataset, build_dataloader
    from yoloswap.data.formats import load_data_config
    from yoloswap.data.synthetic import builtin_data_yaml

    data_yaml = Path(options.data) if options.data else builtin_data_yaml()
    if not options.data:
        log(f"data: built-in synthetic set at {data_yaml.parent}")
    cfg = load_data_config(data_yaml)
    if options.data:
        log(f"data: {cfg.source} read as {cfg.layout}; {len(cfg.names)} classes: {', '.join(cfg.names)}")
    train_split, val_split = cfg.train, cfg.val
    for split in (train_split, val_split):
        if split.skipped:
            log(f"[yellow]warning:[/] {split.name}: skipped {len(split.skipped)} unreadable image(s), e.g. "
                f"{split.skipped[0]}")
    train_ds = DetectionDataset(train_split.samples, options.img_size, augment=True, aug=options.augment,
                                seed=options.seed)
    val_ds = DetectionDataset(val_split.samples, options.img_size, augment=False)
    sampler = None
    if dist.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(train_ds, dist.world_size, dist.rank, shuffle=True, seed=options.seed)
    per_rank_batch = distributed.per_process_batch(options.batch_size, dist.world_size)
    train_loader = build_dataloader(train_ds, per_rank_batch, True, options.workers, options.seed + dist.rank,
                                    sampler=sampler)
    val_loader = build_dataloader(val_ds, options.batch_size * VAL_BATCH_MULT, False, options.workers, options.seed)
    return Data(train_loader, val_loader, list(cfg.names), list(cfg.category_ids) if cfg.category_ids else None,
                train_split.samples, per_rank_batch)


def build_model(options: TrainOptions, data: Data, resume_ckpt: dict | None, dist: distributed.Dist, log):
    """preset (+ overrides) → probe → neck/head fitted → weights → anchors → freezing.

    Returns ``(model, preset, plan, weights_report)``; a resumed run rebuilds its checkpoint's own preset and plan
    (its weights are restored later, with the optimizer).
    """
    from yoloswap.backbones.freeze import apply_freezing
    from yoloswap.backbones.probe import fit_to_size
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.config.presets import preset_from_dict

    weights_report = None
    if resume_ckpt is not None:
        preset = preset_from_dict(resume_ckpt["config"]["preset"], origin="checkpoint preset")
        plan = DetectorPlan.from_dict(resume_ckpt["plan"])
        model = detector_from_plan(build_backbone(preset), plan, preset)
    else:
        named = options.backbone != TrainOptions.backbone  # the field's default unless --backbone was given
        init_ckpt = _detector_checkpoint(options.weights, named)  # read once: decides how --weights is used
        size = (options.img_size, options.img_size)
        if init_ckpt is not None:  # a detector file fine-tunes its own architecture
            base = _detector_file_preset(init_ckpt, options, named, log)
        else:
            base = resolve_backbone(options.backbone)
        given = _with_overrides(base, options, init_ckpt is not None)
        if init_ckpt is None:
            given = _normalized_for_weights(given, options.backbone, log)
        preset = fit_to_size(given, size)
        if preset is not given:
            log(f"backbone: {preset.name} built for {size[0]}x{size[1]} inputs (as given it runs only at its "
                "pretrained size or multiples of it); the run records this, so its checkpoints rebuild the same")
        model, plan = build_detector(preset, len(data.names), size, options.neck_width)
        _log_overrides(model, preset, log)
        if not dist.main:
            distributed.barrier(dist)  # rank 0 downloads into the cache first; the others then read it
        weights_report = _load_initial_weights(model, preset, options, init_ckpt, log)
        if dist.main:
            distributed.barrier(dist)
        if options.autoanchor:  # deterministic (seeded), so every rank installs the same anchors
            from yoloswap.training.autoanchor import check_anchors

            plan = check_anchors(model.head, plan, data.train_samples, options.img_size, log, options.seed)
    apply_freezing(model.backbone, preset.frozen_stages, preset.norm_eval)
    return model, preset, plan, weights_report


def choose_precision(model, preset, plan, options: TrainOptions, device: torch.device, batch: int,
                     resume_ckpt: dict | None, dist: distributed.Dist, log) -> torch.dtype | None:
    """The autocast dtype: bf16/fp16 on CUDA; on a CPU bf16 only where a timed step shows it is faster for this
    model (rank 0 measures, alone on the cores; every rank follows); a resumed run keeps what it started with."""
    amp_dtype = amp_dtype_for(device, options.amp)
    if amp_dtype is None or device.type != "cpu":
        return amp_dtype
    recorded = (resume_ckpt or {}).get("config", {}).get("precision")
    if recorded in DTYPES:
        return DTYPES[recorded]
    # The anchors do not change the arithmetic, and are left out so a run and its resume agree on the key.
    describe = {"model": preset.to_dict()["model"], "plan": {k: v for k, v in plan.to_dict().items() if k != "anchors"}}
    measured = cpu_precision(model, describe, batch, options.img_size, log) if dist.main else None
    return distributed.broadcast(dist, measured)


def build_optimization(options: TrainOptions, out: Path, preset, plan, model, data: Data, device: torch.device,
                       amp_dtype, dist: distributed.Dist) -> Run:
    """``auto`` resolved to a concrete optimizer and lr (recorded in the options, so config.yaml, a resume and a
    replay all use the same); the nominal batch by accumulation, weight decay scaled to match; EMA, DDP, compile."""
    from yoloswap.training.optim import build_optimizer

    n_images = len(data.train_loader.dataset)
    choice = distributed.broadcast(dist, _choose_optimizer(options, preset, len(data.names), n_images, model,
                                                           data.per_rank_batch, device, amp_dtype))
    options = dataclasses.replace(options, optimizer=choice.name, lr=choice.lr)
    accumulate_target = max(options.nominal_batch / options.batch_size, 1.0)
    accumulate = max(round(accumulate_target), 1)
    wd = options.weight_decay if options.weight_decay is not None else preset.optimizer.weight_decay
    wd *= options.batch_size * accumulate / options.nominal_batch
    optimizer = build_optimizer(model, choice.name, choice.lr, choice.momentum, wd,
                                backbone_lr_mult=options.backbone_lr_mult, layer_decay=options.layer_decay)
    schedule = Schedule(
        epochs=options.epochs, iters_per_epoch=len(data.train_loader), lrf=options.lrf, cosine=options.cos_lr,
        warmup_epochs=options.warmup_epochs, warmup_bias_lr=choice.warmup_bias_lr, momentum=choice.momentum,
        accumulate=accumulate_target, freeze_backbone_epochs=options.freeze_backbone_epochs,
    )
    ema = ModelEMA(model) if options.ema and dist.main else None
    wrapped = distributed.wrap(dist, model, device)
    if options.compile:
        wrapped = torch.compile(wrapped)
    return Run(
        options=options, out=out, preset=preset, plan=plan, names=data.names, category_ids=data.category_ids,
        model=wrapped, ema=ema, optimizer=optimizer, scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
        schedule=schedule, device=device, amp_dtype=amp_dtype, accumulate=accumulate, dist=dist,
        optimizer_reason=choice.reason, max_epochs=options.epochs,
    )


def weights_loaded(options: TrainOptions, preset) -> bool:
    """Whether the run starts from trained weights (a named source or a checkpoint), not from scratch."""
    source = options.weights if options.weights is not None else preset.weights
    return str(source).lower() != "none"


def resolve_recipe(options: TrainOptions, preset, dist: distributed.Dist, log) -> TrainOptions:
    """The fine-tuning knobs this run uses, by the documented rule (README, "Fine-tuning recipe"), recorded in
    the options so config.yaml and a resume say the same; the log states the choice and why.

    ``--bn`` not given: with loaded weights the preset's ``norm_eval`` (``eval`` or ``train``), from scratch
    ``train`` (freezing random statistics would only fix them at 0/1). A resumed run keeps what it recorded.
    """
    loaded = weights_loaded(options, preset)
    bn, why = options.bn, "--bn" if options.bn is not None else ""
    if bn is None:
        if options.norm_eval is not None:
            bn, why = ("eval" if options.norm_eval else "train"), "--norm-eval given"
        elif loaded:
            bn, why = ("eval" if preset.norm_eval else "train"), f"weights loaded: the preset's norm_eval {preset.norm_eval}"
        else:
            bn, why = "train", "from scratch"
    if options.freeze_backbone_epochs and dist.enabled:
        raise UsageError("--freeze-backbone-epochs: not supported under torchrun (DDP fixes the trainable "
                         "parameters when it wraps the model); train on one process or use --frozen-stages")
    if options.freeze_backbone_epochs >= options.epochs:
        raise UsageError(f"--freeze-backbone-epochs {options.freeze_backbone_epochs}: must be below --epochs "
                         f"{options.epochs}, or the backbone never trains")
    log(f"recipe: {'pretrained weights' if loaded else 'from scratch'}; bn {bn} ({why}); layer decay "
        f"{options.layer_decay:g}; backbone lr × {options.backbone_lr_mult:g}; backbone frozen for the first "
        f"{options.freeze_backbone_epochs} epochs; frozen stages {preset.frozen_stages}")
    return dataclasses.replace(options, bn=bn)


def _choose_optimizer(options: TrainOptions, preset, num_classes: int, images: int, model, batch: int,
                      device: torch.device, amp_dtype):
    """Resolve ``--optimizer auto`` from the run's length in optimizer steps (a ``--time`` run: estimated)."""
    from yoloswap.training.optim import SHORT_RUN_STEPS, choose_optimizer, optimizer_steps

    steps = optimizer_steps(images, options.batch_size, options.nominal_batch, options.epochs)
    note = ""
    if options.time is not None and options.optimizer == "auto" and options.lr is None and steps > SHORT_RUN_STEPS:
        # Only when the run could be long does its speed matter: time a step of the model (no data loading, so
        # an upper bound of the steps the budget holds) and count the epochs that fit.
        per_epoch_s = math.ceil(images / batch) * seconds_per_step(model, batch, options.img_size, device, amp_dtype)
        fit = max(1, min(options.epochs, int(options.time * 60 // max(per_epoch_s, 1e-9))))
        steps = optimizer_steps(images, options.batch_size, options.nominal_batch, fit)
        note = f" (--time {options.time:g} min: about {fit} epochs)"
    return choose_optimizer(options.optimizer, options.lr, preset.optimizer, num_classes, steps, note)


def _with_overrides(preset, options: TrainOptions, fine_tune: bool):
    """CLI options override the preset's training controls; the result is what the run records."""
    changes = {}
    for name in ("frozen_stages", "norm_eval", "drop_path_rate", "head", "act", "act_scope"):
        value = getattr(options, name)
        if value is not None:
            changes[name] = value
    if options.norm_momentum is not None or options.norm_eps is not None:
        base = preset.norm or NormOverride()
        changes["norm"] = NormOverride(
            momentum=base.momentum if options.norm_momentum is None else options.norm_momentum,
            eps=base.eps if options.norm_eps is None else options.norm_eps,
        )
    if options.weights is not None and not fine_tune:
        changes["weights"] = options.weights
    return dataclasses.replace(preset, **changes) if changes else preset


def _log_overrides(model, preset, log) -> None:
    """Say which activations the built model runs and which act/norm overrides could not apply (one line each)."""
    from yoloswap.backbones.overrides import has_overrides
    from yoloswap.models.activations import act_names_in

    if not has_overrides(preset):
        return
    parts = ("backbone", "neck", "head") if preset.act_scope == "all" else ("backbone",)
    used = "; ".join(f"{p} {'/'.join(act_names_in(getattr(model, p))) or 'none'}" for p in parts)
    norm = f", BatchNorm {preset.norm.momentum, preset.norm.eps}" if preset.norm is not None else ""
    log(f"act/norm override ({preset.act_scope}): activations in use: {used}{norm}")
    for note in model.backbone.override_notes:
        log(f"[yellow]warning:[/] {note}")


def _normalized_for_weights(preset, backbone: str, log):
    """The preset with the mean/std its weights declare (backbones/normalization.py: an explicit ``normalize:``
    in the preset wins; then the file's metadata; then timm's or torchvision's config). Recorded in the preset,
    so config.yaml, every checkpoint and the exported model carry the values the run trained with."""
    from yoloswap.backbones.normalization import preset_sets_normalize, weights_normalization
    from yoloswap.config.presets import Normalize

    where = "ImageNet (default)"
    if preset_sets_normalize(backbone):
        where = "the preset's normalize:"
    else:
        declared = weights_normalization(preset.weights)
        if declared is not None:
            mean, std, where = declared
            preset = dataclasses.replace(preset, normalize=Normalize(mean=mean, std=std))
    log(f"normalise: mean {list(preset.normalize.mean)} std {list(preset.normalize.std)} ({where})")
    return preset


def _detector_checkpoint(weights: str | None, backbone_named: bool) -> dict | None:
    """``--weights`` as a yoloswap detector checkpoint (to fine-tune), or None when it is backbone weights.

    A file that cannot be read is left to the backbone loader, whose error names what is wrong with it. A detector
    whose backbone alone can be used (an Ultralytics YOLOv8 file) is backbone weights for a named ``--backbone``;
    without one, its error says which preset takes it.
    """
    if weights is None or not Path(weights).is_file() or Path(weights).suffix not in (".pt", ".pth"):
        return None
    try:  # yoloswap's own, or a YOLOv5 / Ultralytics / MMYOLO detector file read as one
        return read_detector_file(Path(weights))
    except BackboneOnlyFile:
        if not backbone_named:
            raise
        return None
    except CheckpointError:
        return None


def _detector_file_preset(ckpt: dict, options: TrainOptions, backbone_named: bool, log):
    """The preset of the detector in ``--weights`` (yoloswap's own, or a YOLOv5 / Ultralytics / MMYOLO file), which
    the run fine-tunes, as ``yolo train model=best.pt`` does: the file decides the architecture. A ``--backbone``
    that names another one is refused: loading a detector into a different one keeps almost nothing of it."""
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.config.presets import preset_from_dict

    preset = preset_from_dict(ckpt["config"]["preset"], origin=str(options.weights))
    if backbone_named and resolve_backbone(options.backbone).name != preset.name:
        raise UsageError(f"--weights {options.weights} holds a {preset.name} detector, and --backbone "
                         f"{options.backbone} asks for another: leave --backbone out to fine-tune that detector, or "
                         "give --weights backbone weights for the backbone you name")
    codebase = ckpt["origin"]["codebase"] if "origin" in ckpt else "yoloswap"
    log(f"weights: {options.weights} is a {codebase} {preset.name} detector (head {preset.head}, "
        f"{len(ckpt['names'])} classes); training that architecture")
    return preset


def _load_initial_weights(model, preset, options: TrainOptions, init_ckpt: dict | None, log):
    """A yoloswap checkpoint fine-tunes the whole detector; anything else is backbone weights."""
    from yoloswap.backbones.weights import load_backbone_weights

    if init_ckpt is not None:
        state = init_ckpt.get("ema") or init_ckpt["model"]
        own = model.state_dict()
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        other = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
        model.load_state_dict(fitting, strict=False)
        origin = f" ({init_ckpt['origin']['codebase']})" if "origin" in init_ckpt else ""
        fresh = f"; {len(other)} of another shape re-initialised ({', '.join(other[:3])})" if other else ""
        log(f"weights: loaded {len(fitting)}/{len(own)} detector tensors from {options.weights}{origin}{fresh}")
        return None
    report = load_backbone_weights(model.backbone, preset.weights, preset, min_fraction=options.min_weights_fraction)
    if report is None:
        log("weights: none (training the backbone from scratch)")
    else:
        log(report.summary_line())  # "weights: loaded ..."
    return report
