"""Commands that use a trained detector: val (COCO mAP of a checkpoint or an exported file) and predict."""

from __future__ import annotations

import time
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
        from yoloswap.reports.charts import save_evaluation_plots

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
                                 help="A yoloswap checkpoint, or an exported .onnx / .torchscript / OpenVINO .xml file.")],
    source: Annotated[str, Opt("--source", "-s", rich_help_panel=H.DATA,
                               help="An image, a folder, a glob ('imgs/*.jpg'), a .txt list of images, a video "
                                    "(mp4, avi, mov, mkv), a webcam index (0) or a stream URL (rtsp://, http://).")],
    out_dir: Annotated[Optional[Path], Opt("--out", rich_help_panel=H.OUTPUT,
                                           help="Output folder (default runs/predict/expN).")] = None,
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help="Inference size in "
                                           "pixels, a multiple of 32. Default: the size the run trained at.")] = None,
    conf: Annotated[float, Opt(rich_help_panel=H.DETECTION, min=0.0, max=1.0,
                               help="Score threshold, 0-1: boxes below it are dropped.")] = 0.25,
    iou: Annotated[float, Opt(min=0.0, max=1.0, rich_help_panel=H.DETECTION, help="NMS IoU threshold, 0-1.")] = 0.45,
    max_det: Annotated[int, Opt("--max-det", min=1, rich_help_panel=H.DETECTION,
                                help="Most detections kept per picture.")] = 300,
    classes: Annotated[Optional[str], Opt("--classes", rich_help_panel=H.DETECTION,
                                          help="Keep only these classes: names or indices, comma-separated.")] = None,
    save_txt: Annotated[bool, H.flag("--save-txt", rich_help_panel=H.OUTPUT,
                                     help="Write YOLO label files (labels/STEM.txt, 'cls cx cy w h').")] = False,
    save_conf: Annotated[bool, H.flag("--save-conf", rich_help_panel=H.OUTPUT,
                                      help="With --save-txt: add the confidence as a sixth column.")] = False,
    save_crop: Annotated[bool, H.flag("--save-crop", rich_help_panel=H.OUTPUT,
                                      help="Save each detection as an image under crops/CLASS/.")] = False,
    no_save: Annotated[bool, H.flag("--no-save", rich_help_panel=H.OUTPUT,
                                    help="Do not write annotated images or video (JSON and labels still).")] = False,
    hide_labels: Annotated[bool, H.flag("--hide-labels", rich_help_panel=H.OUTPUT,
                                        help="Draw boxes without class names.")] = False,
    hide_conf: Annotated[bool, H.flag("--hide-conf", rich_help_panel=H.OUTPUT,
                                      help="Draw class names without scores.")] = False,
    batch_size: Annotated[int, Opt("--batch-size", min=1, rich_help_panel=H.HARDWARE,
                                   help="Pictures per forward pass (a live source runs one at a time).")] = 8,
    workers: Annotated[int, Opt(min=0, rich_help_panel=H.HARDWARE,
                                help="DataLoader processes decoding image files (0: in this process).")] = 2,
    device: Annotated[str, Opt(rich_help_panel=H.HARDWARE,
                               help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Detect objects in images, videos, webcams or streams; writes annotated pictures and the predictions."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from yoloswap.cli.console import err, out
    from yoloswap.deploy.outputs import OutputOptions, PredictionWriter
    from yoloswap.deploy.predict import PredictSettings, Speed, parse_classes, predict_source
    from yoloswap.deploy.runtimes import load_runtime
    from yoloswap.deploy.sources import open_source
    from yoloswap.device import resolve_device
    from yoloswap.reports.plots import draw_detections
    from yoloswap.run_folders import new_run_dir

    model = load_runtime(weights, resolve_device(device))  # a .pt checkpoint or an exported file
    found = open_source(source)
    settings = PredictSettings(model.size_for(img_size), conf, iou, max_det, parse_classes(classes, model.names),
                               batch_size, workers)
    folder = out_dir or new_run_dir(Path("runs/predict"))
    options = OutputOptions(not no_save, save_txt, save_conf, save_crop, hide_labels, hide_conf)
    writer = PredictionWriter(folder, model.names, found, options, draw_detections)
    speed = Speed()
    total = len(found.files) if not found.is_capture else found.frame_count
    columns = (TextColumn(f"[bold]{found.kind}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]}"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, refresh_per_second=4) as progress:
            task = progress.add_task("predict", total=total, fps="")
            start = time.perf_counter()
            for frame, dets in predict_source(model, found, settings, speed):
                writer.add(frame, dets)
                progress.update(task, advance=1, fps=f"{writer.frames / (time.perf_counter() - start):.1f} fps")
    finally:  # Ctrl-C or a dropped stream: what was written stays, the video is closed properly
        writer.close()
        err.print(speed.line())
    what = "images" if not found.is_capture else "frames"
    out.print(f"{writer.detections} detections in {writer.frames} {what} at {settings.img_size} px → {folder} "
              f"({writer.predictions_path.name})")
