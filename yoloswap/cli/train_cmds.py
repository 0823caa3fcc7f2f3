"""Commands that train and use detectors: train, val, predict, demo-data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H
from yoloswap.cli.config_file import apply_config_file
from yoloswap.engine.options import BUILTIN_SET_DEFAULTS, HELP, default_of

Opt = typer.Option


def _help(name: str) -> str:
    """An option's help from engine/options.py, with its default (and the built-in set's, where that differs)."""
    default = default_of(name)
    text = HELP[name]
    if isinstance(default, bool) or (default is None and name not in BUILTIN_SET_DEFAULTS):
        return text
    shown = "none" if default is None else f"{default:g}" if isinstance(default, float) else default
    if name in BUILTIN_SET_DEFAULTS:
        return f"{text} (default {shown}; {BUILTIN_SET_DEFAULTS[name]:g} on the built-in set)"
    return f"{text} (default {shown})"


def register(app: typer.Typer) -> None:
    app.command("train", cls=H.Command)(train)
    app.command("val", cls=H.Command)(val)
    app.command("predict", cls=H.Command)(predict)
    app.command("demo-data", cls=H.Command)(demo_data)


def train(
    backbone: Annotated[Optional[str], Opt("--backbone", "-b", rich_help_panel=H.MODEL, help=_help("backbone"))] = None,
    data: Annotated[Optional[str], Opt("--data", rich_help_panel=H.DATA, help=_help("data"))] = None,
    epochs: Annotated[Optional[int], Opt(rich_help_panel=H.OPTIMIZATION, help=_help("epochs"))] = None,
    time_budget: Annotated[Optional[float], Opt("--time", rich_help_panel=H.OPTIMIZATION, help=_help("time"))] = None,
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help=_help("img_size"))] = None,
    batch_size: Annotated[Optional[int], Opt("--batch-size", rich_help_panel=H.OPTIMIZATION, help=_help("batch_size"))] = None,
    device: Annotated[Optional[str], Opt(rich_help_panel=H.HARDWARE, help=_help("device"))] = None,
    weights: Annotated[Optional[str], Opt(rich_help_panel=H.MODEL, help=_help("weights"))] = None,
    out: Annotated[Optional[Path], Opt("--out", rich_help_panel=H.OUTPUT, help="Run folder (default runs/train/expN).")] = None,
    resume: Annotated[Optional[Path], Opt("--resume", rich_help_panel=H.OUTPUT, help="Continue the run in this folder from its last checkpoint; with --epochs N, train it on to N epochs (a finished run too).")] = None,
    exist_ok: Annotated[bool, H.flag("--exist-ok", rich_help_panel=H.OUTPUT, help="Allow --out to be an existing run folder (overwrites it).")] = False,
    workers: Annotated[Optional[int], Opt(rich_help_panel=H.HARDWARE, help=_help("workers"))] = None,
    seed: Annotated[Optional[int], Opt(rich_help_panel=H.OPTIMIZATION, help=_help("seed"))] = None,
    neck_width: Annotated[Optional[str], Opt("--neck-width", rich_help_panel=H.MODEL, help=_help("neck_width"))] = None,
    head: Annotated[Optional[str], Opt("--head", rich_help_panel=H.MODEL, help=_help("head"))] = None,
    optimizer: Annotated[Optional[str], Opt(rich_help_panel=H.OPTIMIZATION, help=_help("optimizer"))] = None,
    lr: Annotated[Optional[float], Opt(rich_help_panel=H.OPTIMIZATION, help=_help("lr"))] = None,
    weight_decay: Annotated[Optional[float], Opt("--weight-decay", rich_help_panel=H.OPTIMIZATION, help=_help("weight_decay"))] = None,
    lrf: Annotated[Optional[float], Opt(rich_help_panel=H.OPTIMIZATION, help=_help("lrf"))] = None,
    cos_lr: Annotated[bool, H.flag("--cos-lr", rich_help_panel=H.OPTIMIZATION, help=_help("cos_lr"))] = default_of("cos_lr"),
    warmup_epochs: Annotated[Optional[float], Opt("--warmup-epochs", rich_help_panel=H.OPTIMIZATION, help=_help("warmup_epochs"))] = None,
    nominal_batch: Annotated[Optional[int], Opt("--nominal-batch", rich_help_panel=H.OPTIMIZATION, help=_help("nominal_batch"))] = None,
    backbone_lr_mult: Annotated[Optional[float], Opt("--backbone-lr-mult", rich_help_panel=H.OPTIMIZATION, help=_help("backbone_lr_mult"))] = None,
    frozen_stages: Annotated[Optional[int], Opt("--frozen-stages", rich_help_panel=H.MODEL, help=_help("frozen_stages"))] = None,
    norm_eval: Annotated[Optional[bool], H.flag("--norm-eval/--no-norm-eval", rich_help_panel=H.MODEL, help=_help("norm_eval"))] = None,
    drop_path_rate: Annotated[Optional[float], Opt("--drop-path-rate", rich_help_panel=H.MODEL, help=_help("drop_path_rate"))] = None,
    min_weights_fraction: Annotated[Optional[float], Opt("--min-weights-fraction", rich_help_panel=H.MODEL, help=_help("min_weights_fraction"))] = None,
    close_mosaic: Annotated[Optional[int], Opt("--close-mosaic", rich_help_panel=H.AUGMENTATION, help=_help("close_mosaic"))] = None,
    autoanchor: Annotated[bool, H.flag("--autoanchor/--no-autoanchor", rich_help_panel=H.MODEL, help=_help("autoanchor"))] = default_of("autoanchor"),
    val_interval: Annotated[Optional[int], Opt("--val-interval", rich_help_panel=H.OUTPUT, help=_help("val_interval"))] = None,
    ema: Annotated[bool, H.flag("--ema/--no-ema", rich_help_panel=H.OPTIMIZATION, help=_help("ema"))] = default_of("ema"),
    amp: Annotated[bool, H.flag("--amp/--no-amp", rich_help_panel=H.HARDWARE, help=_help("amp"))] = default_of("amp"),
    compile_model: Annotated[bool, H.flag("--compile", rich_help_panel=H.HARDWARE, help=_help("compile"))] = default_of("compile"),
    mosaic: Annotated[Optional[float], Opt(rich_help_panel=H.AUGMENTATION, help=_help("mosaic"))] = None,
    degrees: Annotated[Optional[float], Opt(rich_help_panel=H.AUGMENTATION, help=_help("degrees"))] = None,
    translate: Annotated[Optional[float], Opt(rich_help_panel=H.AUGMENTATION, help=_help("translate"))] = None,
    scale: Annotated[Optional[float], Opt(rich_help_panel=H.AUGMENTATION, help=_help("scale"))] = None,
    shear: Annotated[Optional[float], Opt(rich_help_panel=H.AUGMENTATION, help=_help("shear"))] = None,
    fliplr: Annotated[Optional[float], Opt(rich_help_panel=H.AUGMENTATION, help=_help("fliplr"))] = None,
    hsv_h: Annotated[Optional[float], Opt("--hsv-h", rich_help_panel=H.AUGMENTATION, help=_help("hsv_h"))] = None,
    hsv_s: Annotated[Optional[float], Opt("--hsv-s", rich_help_panel=H.AUGMENTATION, help=_help("hsv_s"))] = None,
    hsv_v: Annotated[Optional[float], Opt("--hsv-v", rich_help_panel=H.AUGMENTATION, help=_help("hsv_v"))] = None,
    config: Annotated[Optional[Path], Opt("--config", is_eager=True, callback=apply_config_file, rich_help_panel=H.OUTPUT,
                      help="YAML file of training options (keys as in a run's config.yaml, which reruns that run); "
                      "flags override it.")] = None,
) -> None:
    """Train a YOLOv5 detector on BACKBONE (the built-in data set unless --data is given)."""
    from yoloswap.cli.console import err
    from yoloswap.cli.progress import RichProgress
    from yoloswap.engine.options import TrainOptions
    from yoloswap.engine.signals import StopRequested
    from yoloswap.engine.trainer import train as run_training
    from yoloswap.assembly import check_head, parse_neck_width

    # Options not given stay None here, and TrainOptions supplies the defaults (engine/options.py, their one home).
    given = dict(
        backbone=backbone, epochs=epochs, time=time_budget, img_size=img_size, batch_size=batch_size,
        nominal_batch=nominal_batch, device=device, workers=workers, seed=seed, weights=weights,
        neck_width=parse_neck_width(neck_width), optimizer=optimizer, lr=lr, weight_decay=weight_decay, lrf=lrf,
        cos_lr=cos_lr, warmup_epochs=warmup_epochs, backbone_lr_mult=backbone_lr_mult, frozen_stages=frozen_stages,
        norm_eval=norm_eval, drop_path_rate=drop_path_rate, close_mosaic=close_mosaic, val_interval=val_interval,
        ema=ema, amp=amp, compile=compile_model, min_weights_fraction=min_weights_fraction,
        mosaic=mosaic, degrees=degrees, translate=translate, scale=scale, shear=shear, fliplr=fliplr,
        hsv_h=hsv_h, hsv_s=hsv_s, hsv_v=hsv_v,
        head=check_head(head) if head is not None else None, autoanchor=autoanchor,
    )
    options = TrainOptions.for_data(data, given)
    try:
        run_training(options, out=out, exist_ok=exist_ok, resume=resume, console=err, progress=RichProgress(err),
                     extend_to=epochs if resume is not None else None)  # --resume RUN --epochs N extends RUN
    except StopRequested as exc:  # SIGTERM: stopped at a safe point, the trainer said how to resume
        raise typer.Exit(exc.exit_code) from None


def val(
    weights: Annotated[Path, Opt("--weights", "-w", rich_help_panel=H.MODEL,
                                 help="A yoloswap checkpoint (best.pt / last.pt), or an exported .onnx / .torchscript file.")],
    data: Annotated[Optional[str], Opt(rich_help_panel=H.DATA, help="Data YAML (Ultralytics or COCO). Default: "
                                       "the one the run was trained on (the built-in set if it used that).")] = None,
    split: Annotated[str, Opt(rich_help_panel=H.DATA, help="Which split of the data YAML to evaluate "
                              "(train, val or another key it names).")] = "val",
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help="Evaluation size in "
                                           "pixels, a multiple of 32. Default: the size the run trained at.")] = None,
    batch_size: Annotated[int, Opt("--batch-size", rich_help_panel=H.HARDWARE, min=1,
                                   help="Images per forward pass (memory, not results).")] = 16,
    device: Annotated[str, Opt(rich_help_panel=H.HARDWARE,
                               help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[int, Opt(rich_help_panel=H.HARDWARE, min=0,
                                help="DataLoader worker processes (0: load in this process).")] = 2,
    conf: Annotated[float, Opt(rich_help_panel=H.DETECTION, min=0.0, max=1.0,
                               help="Score threshold, 0-1 (low, so the mAP curve is complete).")] = 0.001,
    iou: Annotated[float, Opt(min=0.0, max=1.0, rich_help_panel=H.DETECTION, help="NMS IoU threshold, 0-1.")] = 0.65,
    save_json: Annotated[Optional[Path], Opt("--save-json", rich_help_panel=H.OUTPUT,
                                             help="Write the predictions to this file as COCO results JSON.")] = None,
    as_json: Annotated[bool, H.flag("--json", rich_help_panel=H.OUTPUT,
                                    help="Print the metrics as JSON on stdout.")] = False,
) -> None:
    """Evaluate a trained checkpoint: COCO mAP@[.5:.95] and mAP@.5."""
    import json

    from yoloswap.cli.console import err, out, print_json
    from yoloswap.data.dataset import DetectionDataset, build_dataloader
    from yoloswap.data.formats import load_data_config
    from yoloswap.engine.checkpoint import load_checkpoint
    from yoloswap.engine.model_io import detector_from_checkpoint, inference_size
    from yoloswap.engine.runtimes import is_exported
    from yoloswap.engine.validate import evaluate
    from yoloswap.errors import DataError
    from yoloswap.probe import resolve_device

    if is_exported(weights):  # an exported .onnx, run by its runtime (engine/runtimes.py)
        from yoloswap.cli.export_cmds import val_exported

        return val_exported(weights, data, split, img_size, batch_size, device, workers, conf, iou, save_json, as_json)
    ckpt = load_checkpoint(weights)
    model, preset, plan, names, _ = detector_from_checkpoint(ckpt, weights)
    trained_on = _trained_data(ckpt)
    cfg = load_data_config(Path(data) if data else _run_data_yaml(trained_on, weights))
    if len(cfg.names) != len(names):
        raise DataError(f"{cfg.source}: {len(cfg.names)} classes, but {weights} was trained for {len(names)} "
                        f"(on {trained_on or 'the built-in set'}); pass --data with a data set of those classes")
    if list(cfg.names) != list(names):
        err.print(f"[yellow]warning:[/] {cfg.source} names its classes {list(cfg.names)}, the model was trained "
                  f"on {list(names)}")
    dev = resolve_device(device)
    size = inference_size(preset, int(ckpt["config"]["options"]["img_size"]), img_size, weights)
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
    metrics.update(images=len(ds), weights=str(weights), backbone=preset.name, data=str(cfg.source), split=split,
                   img_size=size)
    if as_json:
        print_json(metrics)
        return
    out.print(f"{preset.name}: mAP@.5:.95 [bold]{metrics['map']:.4f}[/]  mAP@.5 [bold]{metrics['map50']:.4f}[/]  "
              f"mAP@.75 {metrics['map75']:.4f}  on {cfg.source} {split} ({len(ds)} images at {size} px)")


def _trained_data(ckpt: dict) -> str | None:
    """The data YAML a run was trained on, as its checkpoint records it (None: the built-in set)."""
    return (ckpt.get("config") or {}).get("options", {}).get("data")


def _run_data_yaml(trained_on: str | None, weights: Path) -> Path:
    """Where ``val`` finds the run's own data when no --data is given: the YAML it was trained on."""
    from yoloswap.data.synthetic import builtin_data_yaml
    from yoloswap.errors import DataError

    if trained_on is None:
        return builtin_data_yaml()
    path = Path(trained_on).expanduser()
    if not path.is_file():
        raise DataError(f"{weights} was trained on {trained_on}, which is not found from here; pass --data")
    return path


def predict(
    weights: Annotated[Path, Opt("--weights", "-w", rich_help_panel=H.MODEL,
                                 help="A yoloswap checkpoint, or an exported .onnx / .torchscript file.")],
    source: Annotated[Path, Opt("--source", "-s", rich_help_panel=H.DATA,
                                help="An image or a folder of images (jpg, png, bmp, webp).")],
    out_dir: Annotated[Optional[Path], Opt("--out", rich_help_panel=H.OUTPUT,
                                           help="Output folder (default runs/predict/expN).")] = None,
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help="Inference size in "
                                           "pixels, a multiple of 32. Default: the size the run trained at.")] = None,
    conf: Annotated[float, Opt(rich_help_panel=H.DETECTION, min=0.0, max=1.0,
                               help="Score threshold, 0-1: boxes below it are dropped.")] = 0.25,
    iou: Annotated[float, Opt(min=0.0, max=1.0, rich_help_panel=H.DETECTION, help="NMS IoU threshold, 0-1.")] = 0.45,
    device: Annotated[str, Opt(rich_help_panel=H.HARDWARE,
                               help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Detect objects in images; writes images with boxes and predictions.json."""
    from rich.progress import Progress

    from yoloswap.cli.console import err, out
    from yoloswap.engine.plots import draw_detections
    from yoloswap.engine.predict import detections_json, iter_sources, predict_images, write_predictions
    from yoloswap.engine.runtimes import load_runtime
    from yoloswap.engine.trainer import new_run_dir
    from yoloswap.probe import resolve_device

    model = load_runtime(weights, resolve_device(device))  # a .pt checkpoint or an exported .onnx
    names = model.names
    files = iter_sources(source)
    folder = out_dir or new_run_dir(Path("runs/predict"))
    folder.mkdir(parents=True, exist_ok=True)
    size = model.size_for(img_size)
    records = []
    with Progress(console=err) as progress:
        task = progress.add_task("predicting", total=len(files))
        for path, image, dets in predict_images(model, files, size, resolve_device(device), conf, iou):
            draw_detections(image, dets, names, out_path=folder / f"{path.stem}.jpg")
            records.append(detections_json(path, dets, names))
            progress.advance(task)
    json_path = write_predictions(folder, records)
    total = sum(len(r["detections"]) for r in records)
    out.print(f"{total} detections in {len(records)} images at {size} px → {folder} ({json_path.name})")


def demo_data(
    out_dir: Annotated[Path, Opt("--out", rich_help_panel=H.OUTPUT,
                                 help="Folder to write the built-in data set into (Ultralytics layout).")],
) -> None:
    """Write the built-in synthetic detection set as an Ultralytics-layout data set."""
    from yoloswap.cli.console import out
    from yoloswap.data.synthetic import write_demo_data

    path = write_demo_data(out_dir)
    out.print(f"wrote the built-in data set to {out_dir}; train on it with --data {path}")
