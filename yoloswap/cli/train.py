"""Commands that train: train, and demo-data (the built-in set written out as files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H
from yoloswap.cli.config_file import apply_config_file
from yoloswap.config.options import BUILTIN_SET_DEFAULTS, HELP, default_of

Opt = typer.Option


def _help(name: str) -> str:
    """An option's help from config/options.py, with its default (and the built-in set's, where that differs)."""
    default = default_of(name)
    text = HELP[name]
    if isinstance(default, bool) or (default is None and name not in BUILTIN_SET_DEFAULTS):
        return text
    shown = "none" if default is None else f"{default:g}" if isinstance(default, float) else default
    if name in BUILTIN_SET_DEFAULTS:
        return f"{text} (default {shown}; {BUILTIN_SET_DEFAULTS[name]:g} on the built-in set)"
    return f"{text} (default {shown})"


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
    layer_decay: Annotated[Optional[float], Opt("--layer-decay", rich_help_panel=H.OPTIMIZATION, help=_help("layer_decay"))] = None,
    freeze_backbone_epochs: Annotated[Optional[int], Opt("--freeze-backbone-epochs", rich_help_panel=H.OPTIMIZATION, help=_help("freeze_backbone_epochs"))] = None,
    bn: Annotated[Optional[str], Opt("--bn", rich_help_panel=H.MODEL, help=_help("bn"))] = None,
    act: Annotated[Optional[str], Opt("--act", rich_help_panel=H.MODEL, help=_help("act"))] = None,
    act_scope: Annotated[Optional[str], Opt("--act-scope", rich_help_panel=H.MODEL, help=_help("act_scope"))] = None,
    norm_momentum: Annotated[Optional[float], Opt("--norm-momentum", rich_help_panel=H.MODEL, help=_help("norm_momentum"))] = None,
    norm_eps: Annotated[Optional[float], Opt("--norm-eps", rich_help_panel=H.MODEL, help=_help("norm_eps"))] = None,
    close_mosaic: Annotated[Optional[int], Opt("--close-mosaic", rich_help_panel=H.AUGMENTATION, help=_help("close_mosaic"))] = None,
    autoanchor: Annotated[bool, H.flag("--autoanchor/--no-autoanchor", rich_help_panel=H.MODEL, help=_help("autoanchor"))] = default_of("autoanchor"),
    val_interval: Annotated[Optional[int], Opt("--val-interval", rich_help_panel=H.OUTPUT, help=_help("val_interval"))] = None,
    patience: Annotated[Optional[int], Opt("--patience", rich_help_panel=H.OPTIMIZATION, help=_help("patience"))] = None,
    logger: Annotated[Optional[str], Opt("--logger", rich_help_panel=H.OUTPUT, help=_help("logger"))] = None,
    mlflow_uri: Annotated[Optional[str], Opt("--mlflow-uri", rich_help_panel=H.OUTPUT, help=_help("mlflow_uri"))] = None,
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
    from yoloswap import api
    from yoloswap.cli.console import err
    from yoloswap.training.signals import StopRequested

    # Options not given stay None here, and TrainOptions supplies the defaults (config/options.py, their one home);
    # the API checks the names and values, so the CLI and Python share one path.
    given = dict(
        epochs=epochs, time=time_budget, img_size=img_size, batch_size=batch_size,
        nominal_batch=nominal_batch, device=device, workers=workers, seed=seed, weights=weights,
        neck_width=neck_width, optimizer=optimizer, lr=lr, weight_decay=weight_decay, lrf=lrf,
        cos_lr=cos_lr, warmup_epochs=warmup_epochs, backbone_lr_mult=backbone_lr_mult, frozen_stages=frozen_stages,
        norm_eval=norm_eval, drop_path_rate=drop_path_rate, close_mosaic=close_mosaic, val_interval=val_interval, patience=patience, logger=logger,
        mlflow_uri=mlflow_uri,
        ema=ema, amp=amp, compile=compile_model, min_weights_fraction=min_weights_fraction,
        mosaic=mosaic, degrees=degrees, translate=translate, scale=scale, shear=shear, fliplr=fliplr,
        hsv_h=hsv_h, hsv_s=hsv_s, hsv_v=hsv_v, head=head, autoanchor=autoanchor,
        layer_decay=layer_decay, freeze_backbone_epochs=freeze_backbone_epochs, bn=bn,
        act=act, act_scope=act_scope, norm_momentum=norm_momentum, norm_eps=norm_eps,
    )
    try:  # --resume RUN --epochs N extends RUN
        api.train(backbone, data, out=out, resume=resume, exist_ok=exist_ok, console=err, **given)
    except StopRequested as exc:  # SIGTERM: stopped at a safe point, the trainer said how to resume
        raise typer.Exit(exc.exit_code) from None


def demo_data(
    out_dir: Annotated[Path, Opt("--out", rich_help_panel=H.OUTPUT,
                                 help="Folder to write the built-in data set into (Ultralytics layout).")],
) -> None:
    """Write the built-in synthetic detection set as an Ultralytics-layout data set."""
    from yoloswap.cli.console import out
    from yoloswap.data.synthetic import write_demo_data

    path = write_demo_data(out_dir)
    out.print(f"wrote the built-in data set to {out_dir}; train on it with --data {path}")
