"""Commands that train and use detectors: train, val, predict, demo-data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# The built-in set is small and 256 px: by default it trains for at most 8 minutes (epochs refitted to the
# budget), so the README's command finishes on a 2-core CPU, and without gradient accumulation, because in such a
# short run every optimizer step counts (measured: 5-minute yolov5n mAP@.5:.95 0.013 with a nominal batch of 64,
# 0.031 with 16; bench/learning.py). A user's data set gets YOLOv5's 640 px, 100 epochs, nominal batch 64.
BUILTIN_DEFAULTS = {"img_size": 224, "epochs": 30, "time": 8.0, "nominal_batch": 16}
USER_DEFAULTS = {"img_size": 640, "epochs": 100, "time": None, "nominal_batch": 64}

Opt = typer.Option


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("val")(val)
    app.command("predict")(predict)
    app.command("demo-data")(demo_data)


def train(
    backbone: Annotated[str, Opt("--backbone", "-b", help="Preset name, preset YAML, timm:NAME or torchvision:NAME.")] = "yolov5s",
    data: Annotated[Optional[str], Opt("--data", help="Data YAML (Ultralytics or COCO). Default: the built-in synthetic set.")] = None,
    epochs: Annotated[Optional[int], Opt(help="Epochs (default 30 on the built-in set, else 100).")] = None,
    time_budget: Annotated[Optional[float], Opt("--time", help="Minutes to train; epochs are refitted to it (default 8 on the built-in set, else none).")] = None,
    img_size: Annotated[Optional[int], Opt("--img-size", help="Training size, multiple of 32 (default 224 built-in, else 640).")] = None,
    batch_size: Annotated[int, Opt("--batch-size", help="Images per step (gradients accumulate to --nominal-batch).")] = 16,
    device: Annotated[str, Opt(help="auto, cpu, cuda or cuda:N.")] = "auto",
    weights: Annotated[Optional[str], Opt(help="Backbone weights (path, file:// or https:// URL, torchvision://, timm://, none) or a yoloswap checkpoint to fine-tune. Default: the preset's.")] = None,
    out: Annotated[Optional[Path], Opt("--out", help="Run folder (default runs/train/expN).")] = None,
    resume: Annotated[Optional[Path], Opt("--resume", help="Continue the run in this folder from its last checkpoint.")] = None,
    exist_ok: Annotated[bool, Opt("--exist-ok", help="Allow --out to be an existing run folder (overwrites it).")] = False,
    workers: Annotated[int, Opt(help="DataLoader worker processes.")] = 2,
    seed: Annotated[int, Opt(help="Random seed.")] = 0,
    neck_width: Annotated[Optional[str], Opt("--neck-width", help="Neck width: multiplier of the probed channels or c3,c4,c5.")] = None,
    head: Annotated[Optional[str], Opt("--head", help="Detection head: yolov5 (anchor-based) or yolov8 (anchor-free). Default: the preset's (yolov5).")] = None,
    optimizer: Annotated[Optional[str], Opt(help="sgd or adamw (default: the preset's recommendation).")] = None,
    lr: Annotated[Optional[float], Opt(help="Base learning rate (default: the preset's).")] = None,
    weight_decay: Annotated[Optional[float], Opt("--weight-decay", help="Weight decay at batch 64 (default: the preset's).")] = None,
    lrf: Annotated[float, Opt(help="Final lr as a fraction of the base lr.")] = 0.01,
    cos_lr: Annotated[bool, Opt("--cos-lr", help="Cosine instead of linear lr decay.")] = False,
    warmup_epochs: Annotated[float, Opt("--warmup-epochs")] = 3.0,
    nominal_batch: Annotated[Optional[int], Opt("--nominal-batch", help="Gradient accumulation target batch (default 16 built-in, else 64).")] = None,
    backbone_lr_mult: Annotated[float, Opt("--backbone-lr-mult", help="Backbone lr = lr × this.")] = 1.0,
    frozen_stages: Annotated[Optional[int], Opt("--frozen-stages", help="Freeze the stem and the first N stages (default: the preset's).")] = None,
    norm_eval: Annotated[Optional[bool], Opt("--norm-eval/--no-norm-eval", help="Freeze backbone BatchNorm statistics (default: the preset's).")] = None,
    drop_path_rate: Annotated[Optional[float], Opt("--drop-path-rate")] = None,
    min_weights_fraction: Annotated[Optional[float], Opt("--min-weights-fraction", help="Stop unless this fraction of backbone tensors loaded (default 1.0).")] = None,
    close_mosaic: Annotated[int, Opt("--close-mosaic", help="Turn mosaic off for the last N epochs.")] = 10,
    autoanchor: Annotated[bool, Opt("--autoanchor/--no-autoanchor", help="Check the yolov5 head's anchors on the training boxes; evolve them when recall is below 0.98.")] = True,
    val_interval: Annotated[int, Opt("--val-interval", help="Evaluate every N epochs (and after the last).")] = 1,
    ema: Annotated[bool, Opt("--ema/--no-ema")] = True,
    amp: Annotated[bool, Opt("--amp/--no-amp", help="Mixed precision on CUDA (bf16 where supported).")] = True,
    mosaic: Annotated[float, Opt(help="Mosaic probability.")] = 1.0,
    degrees: Annotated[float, Opt()] = 0.0,
    translate: Annotated[float, Opt()] = 0.1,
    scale: Annotated[float, Opt()] = 0.5,
    shear: Annotated[float, Opt()] = 0.0,
    fliplr: Annotated[float, Opt()] = 0.5,
    hsv_h: Annotated[float, Opt("--hsv-h")] = 0.015,
    hsv_s: Annotated[float, Opt("--hsv-s")] = 0.7,
    hsv_v: Annotated[float, Opt("--hsv-v")] = 0.4,
) -> None:
    """Train a YOLOv5 detector on BACKBONE (the built-in data set unless --data is given)."""
    from yoloswap.cli.console import err
    from yoloswap.data.transforms import AugmentConfig
    from yoloswap.engine.options import TrainOptions
    from yoloswap.engine.trainer import train as run_training
    from yoloswap.models.assemble import check_head, parse_neck_width

    defaults = USER_DEFAULTS if data else BUILTIN_DEFAULTS
    options = TrainOptions(
        backbone=backbone, data=data,
        epochs=epochs if epochs is not None else defaults["epochs"],
        img_size=img_size if img_size is not None else defaults["img_size"],
        time=time_budget if time_budget is not None else (None if epochs is not None else defaults["time"]),
        batch_size=batch_size,
        nominal_batch=nominal_batch if nominal_batch is not None else defaults["nominal_batch"],
        device=device, workers=workers, seed=seed,
        weights=weights, neck_width=parse_neck_width(neck_width), optimizer=optimizer, lr=lr, weight_decay=weight_decay,
        lrf=lrf, cos_lr=cos_lr, warmup_epochs=warmup_epochs, backbone_lr_mult=backbone_lr_mult,
        frozen_stages=frozen_stages, norm_eval=norm_eval, drop_path_rate=drop_path_rate,
        close_mosaic=close_mosaic, head=check_head(head) if head is not None else None, autoanchor=autoanchor,
        val_interval=val_interval, ema=ema, amp=amp, min_weights_fraction=min_weights_fraction,
        augment=AugmentConfig(mosaic=mosaic, degrees=degrees, translate=translate, scale=scale, shear=shear,
                               fliplr=fliplr, hsv_h=hsv_h, hsv_s=hsv_s, hsv_v=hsv_v),
    )
    run_training(options, out=out, exist_ok=exist_ok, resume=resume, console=err)


def val(
    weights: Annotated[Path, Opt("--weights", "-w", help="A yoloswap checkpoint (best.pt / last.pt).")],
    data: Annotated[Optional[str], Opt(help="Data YAML (default: the built-in set).")] = None,
    split: Annotated[str, Opt(help="Which split of the data YAML to evaluate.")] = "val",
    img_size: Annotated[Optional[int], Opt("--img-size", help="Default: the size the model was trained at.")] = None,
    batch_size: Annotated[int, Opt("--batch-size")] = 16,
    device: Annotated[str, Opt()] = "auto",
    workers: Annotated[int, Opt()] = 2,
    conf: Annotated[float, Opt(help="Score threshold.")] = 0.001,
    iou: Annotated[float, Opt(help="NMS IoU threshold.")] = 0.65,
    save_json: Annotated[Optional[Path], Opt("--save-json", help="Write the predictions as COCO results JSON.")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print the metrics as JSON on stdout.")] = False,
) -> None:
    """Evaluate a trained checkpoint: COCO mAP@[.5:.95] and mAP@.5."""
    import json

    from yoloswap.cli.console import err, out, print_json
    from yoloswap.data.dataset import DetectionDataset, build_dataloader
    from yoloswap.data.formats import load_data_config
    from yoloswap.data.synthetic import builtin_data_yaml
    from yoloswap.engine.checkpoint import load_checkpoint
    from yoloswap.engine.model_io import detector_from_checkpoint
    from yoloswap.engine.validate import evaluate
    from yoloswap.errors import DataError
    from yoloswap.probe import resolve_device

    ckpt = load_checkpoint(weights)
    model, preset, plan, names, _ = detector_from_checkpoint(ckpt, weights)
    cfg = load_data_config(Path(data) if data else builtin_data_yaml())
    if len(cfg.names) != len(names):
        raise DataError(f"{cfg.source}: {len(cfg.names)} classes, but {weights} was trained for {len(names)}")
    dev = resolve_device(device)
    size = img_size or int(ckpt["config"]["options"]["img_size"])
    ds = DetectionDataset(cfg.split(split).samples, size, augment=False)
    loader = build_dataloader(ds, batch_size, False, workers, 0)
    model.to(dev)
    with err.status(f"evaluating {weights} on {len(ds)} {split} images"):
        result = evaluate(model, loader, list(cfg.names), cfg.category_ids, dev, conf=conf, iou=iou)
    if save_json is not None:
        save_json.parent.mkdir(parents=True, exist_ok=True)
        save_json.write_text(json.dumps(result.accumulator.results()))
        err.print(f"COCO results written to {save_json}")
    metrics = {k: v for k, v in result.metrics.items()}
    metrics.update(images=len(ds), weights=str(weights), backbone=preset.name)
    if as_json:
        print_json(metrics)
        return
    out.print(f"{preset.name}: mAP@.5:.95 [bold]{metrics['map']:.4f}[/]  mAP@.5 [bold]{metrics['map50']:.4f}[/]  "
              f"mAP@.75 {metrics['map75']:.4f}  ({len(ds)} images)")


def predict(
    weights: Annotated[Path, Opt("--weights", "-w", help="A yoloswap checkpoint.")],
    source: Annotated[Path, Opt("--source", "-s", help="An image or a folder of images.")],
    out_dir: Annotated[Optional[Path], Opt("--out", help="Output folder (default runs/predict/expN).")] = None,
    img_size: Annotated[Optional[int], Opt("--img-size")] = None,
    conf: Annotated[float, Opt(help="Score threshold.")] = 0.25,
    iou: Annotated[float, Opt(help="NMS IoU threshold.")] = 0.45,
    device: Annotated[str, Opt()] = "auto",
) -> None:
    """Detect objects in images; writes images with boxes and predictions.json."""
    from rich.progress import Progress

    from yoloswap.cli.console import err, out
    from yoloswap.engine.checkpoint import load_checkpoint
    from yoloswap.engine.model_io import detector_from_checkpoint
    from yoloswap.engine.plots import draw_detections
    from yoloswap.engine.predict import detections_json, iter_sources, predict_images, write_predictions
    from yoloswap.engine.trainer import new_run_dir
    from yoloswap.probe import resolve_device

    ckpt = load_checkpoint(weights)
    model, preset, _, names, _ = detector_from_checkpoint(ckpt, weights)
    files = iter_sources(source)
    folder = out_dir or new_run_dir(Path("runs/predict"))
    folder.mkdir(parents=True, exist_ok=True)
    size = img_size or int(ckpt["config"]["options"]["img_size"])
    records = []
    with Progress(console=err) as progress:
        task = progress.add_task("predicting", total=len(files))
        for path, image, dets in predict_images(model, files, size, resolve_device(device), conf, iou):
            draw_detections(image, dets, names, out_path=folder / f"{path.stem}.jpg")
            records.append(detections_json(path, dets, names))
            progress.advance(task)
    json_path = write_predictions(folder, records)
    total = sum(len(r["detections"]) for r in records)
    out.print(f"{total} detections in {len(records)} images → {folder} ({json_path.name})")


def demo_data(
    out_dir: Annotated[Path, Opt("--out", help="Folder to write the built-in data set into (Ultralytics layout).")],
) -> None:
    """Write the built-in synthetic detection set as an Ultralytics-layout data set."""
    from yoloswap.cli.console import out
    from yoloswap.data.synthetic import write_demo_data

    path = write_demo_data(out_dir)
    out.print(f"wrote the built-in data set to {out_dir}; train on it with --data {path}")
