"""Commands that use a trained detector: val (COCO mAP of a checkpoint or an exported file) and predict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H
from yoloswap.evaluation.metrics import CONFUSION_CONF, CONFUSION_IOU  # numpy only: --help stays quick

Opt = typer.Option


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
    plots: Annotated[Optional[Path], Opt("--plots", rich_help_panel=H.OUTPUT, help="Write confusion_matrix.png "
                                         "/ .csv, PR_curve.png and F1_curve.png into this folder.")] = None,
    confusion_conf: Annotated[float, Opt("--confusion-conf", rich_help_panel=H.OUTPUT, min=0.0, max=1.0,
                                         help="Confusion matrix: lowest score of a detection counted.")] = CONFUSION_CONF,
    confusion_iou: Annotated[float, Opt("--confusion-iou", rich_help_panel=H.OUTPUT, min=0.0, max=1.0,
                                        help="Confusion matrix: IoU above which a detection matches a box.")] = CONFUSION_IOU,
) -> None:
    """Evaluate a trained checkpoint or an exported file: COCO mAP@[.5:.95], mAP@.5, mAP@.75, and per class
    images, instances, precision and recall at the best-F1 confidence, mAP50 and mAP50-95."""
    from yoloswap.cli.console import err, out, print_json
    from yoloswap.evaluation.workflow import validate_file

    result = validate_file(weights, data, split, img_size, batch_size, device, workers, conf, iou, status=err.status)
    if result.warning:
        err.print(f"[yellow]warning:[/] {result.warning}")
    if save_json is not None:
        result.save_json(save_json)
        err.print(f"COCO results written to {save_json}")
    if plots is not None:
        from yoloswap.reports.plots import save_evaluation_plots

        matrix = result.confusion(confusion_conf, confusion_iou)
        written = save_evaluation_plots(result.details, matrix, plots, confusion_conf, confusion_iou)
        err.print(f"plots written to {plots}: {', '.join(p.name for p in written)}")
    metrics = result.summary()
    if as_json:
        print_json(metrics)
        return
    from yoloswap.reports.class_table import class_table

    kind = "" if result.runtime == "pytorch" else f" ({result.runtime})"
    out.print(class_table(result.details, result.metrics))
    out.print(f"{result.backbone}{kind}: mAP@.5:.95 [bold]{metrics['map']:.4f}[/]  mAP@.5 [bold]{metrics['map50']:.4f}[/]  "
              f"mAP@.75 {metrics['map75']:.4f}  on {result.data} {result.split} ({result.images} images at "
              f"{result.img_size} px)")


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
    from yoloswap.reports.plots import draw_detections
    from yoloswap.deploy.predict import detections_json, iter_sources, predict_images, write_predictions
    from yoloswap.deploy.runtimes import load_runtime
    from yoloswap.device import resolve_device
    from yoloswap.run_folders import new_run_dir

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


