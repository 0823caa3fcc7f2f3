"""Commands for deployment: export (ONNX / TorchScript / OpenVINO) and benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H
from yoloswap.deploy.quantize import DEFAULT_CALIB_IMAGES  # numpy only: --help stays quick

Opt = typer.Option


def export(
    weights: Annotated[Path, Opt("--weights", "-w", rich_help_panel=H.MODEL, help="A yoloswap checkpoint (best.pt / last.pt).")],
    fmt: Annotated[str, Opt("--format", "-f", rich_help_panel=H.OUTPUT, help="onnx, torchscript or openvino.")] = "onnx",
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help="Input size (default: the training size).")] = None,
    batch: Annotated[int, Opt("--batch", rich_help_panel=H.HARDWARE, help="Batch size of the graph (ignored with --dynamic).")] = 1,
    dynamic: Annotated[bool, H.flag("--dynamic", rich_help_panel=H.OUTPUT, help="Free batch, height and width.")] = False,
    half: Annotated[bool, H.flag("--half", rich_help_panel=H.HARDWARE, help="fp16 weights and input (needs --device cuda).")] = False,
    opset: Annotated[Optional[int], Opt("--opset", rich_help_panel=H.OUTPUT, help="ONNX opset (default 17).")] = None,
    layout: Annotated[str, Opt("--layout", rich_help_panel=H.OUTPUT, help="Output contract: yoloswap (0-255 in, (B, P, 4+nc) xyxy), ultralytics (YOLOv8: 0-1 in, (B, 4+nc, P) cx,cy,w,h + Ultralytics metadata) or yolov5 (0-1 in, (B, P, 5+nc) with objectness).")] = "yoloswap",
    nms: Annotated[bool, H.flag("--nms", rich_help_panel=H.DETECTION, help="Append NMS: outputs (B, max-det, 6) [x1, y1, x2, y2, score, cls].")] = False,
    conf: Annotated[float, Opt(rich_help_panel=H.DETECTION, help="--nms score threshold.")] = 0.25,
    iou: Annotated[float, Opt(rich_help_panel=H.DETECTION, help="--nms IoU threshold.")] = 0.45,
    max_det: Annotated[int, Opt("--max-det", rich_help_panel=H.DETECTION, help="--nms detections per image.")] = 300,
    out_path: Annotated[Optional[Path], Opt("--out", rich_help_panel=H.OUTPUT, help="Output file (default: next to the weights).")] = None,
    no_reparam: Annotated[bool, H.flag("--no-reparam", rich_help_panel=H.MODEL, help="Export the training form (RepVGG/MobileOne branches unfused), to measure what fusing gains.")] = False,
    device: Annotated[str, Opt(rich_help_panel=H.HARDWARE, help="cpu or cuda (export traces on it).")] = "cpu",
    check: Annotated[bool, H.flag("--check/--no-check", rich_help_panel=H.OUTPUT, help="Run the exported ONNX / OpenVINO file and compare with PyTorch (with --int8 also fp32 vs int8 mAP and latency on a few val images).")] = True,
    int8: Annotated[bool, H.flag("--int8", rich_help_panel=H.OUTPUT, help="Also write an int8 ONNX file beside it (best.int8.onnx), calibrated on --data (ONNX Runtime static quantisation, QDQ).")] = False,
    data: Annotated[Optional[str], Opt(rich_help_panel=H.DATA, help="--int8: the data YAML whose train images calibrate it (its val images score the check).")] = None,
    calib_images: Annotated[Optional[int], Opt("--calib-images", rich_help_panel=H.DATA, help=f"--int8: train images to calibrate on (default {DEFAULT_CALIB_IMAGES}).")] = None,
) -> None:
    """Export a trained detector: the file takes 0-255 RGB (B, 3, H, W) and carries names, strides and size.
    With --int8 --data DATA.yaml, also an int8 ONNX file calibrated on its images, scored against fp32."""
    from yoloswap.cli.console import err, out
    from yoloswap.deploy.export import DEFAULT_OPSET, FORMATS, export_model, export_spec, require_format
    from yoloswap.deploy.runtimes import TorchRuntime
    from yoloswap.errors import UsageError
    from yoloswap.device import resolve_device

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    _check_int8_usage(int8, fmt, data, calib_images, half, nms, opset or DEFAULT_OPSET)
    if int8 and layout != "yoloswap":
        raise UsageError("--int8 is supported with --layout yoloswap only")
    require_format(fmt)
    source = TorchRuntime(weights, "cpu", reparam=not no_reparam)
    spec = export_spec(source.size_for(img_size), batch=batch, dynamic=dynamic, half=half, opset=opset, nms=nms,
                       conf=conf, iou=iou, max_det=max_det, layout=layout)
    path = out_path or weights.with_suffix(FORMATS[fmt][0])
    with err.status(f"exporting {weights} to {fmt}"):
        export_model(source.model, source.names, source.backbone, fmt, spec, path, resolve_device(device),
                     trained_on=source.trained_on)
    out.print(f"exported {source.backbone} ({spec.img_size}×{spec.img_size}, "
              f"{'dynamic' if dynamic else f'batch {batch}'}) → {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if fmt in ("onnx", "openvino") and check and not half:
        from yoloswap.deploy.export import check_parity

        report = check_parity(source.model, path, spec)
        out.print(f"{report['runtime']} vs PyTorch: max |Δ| boxes {report['max_abs_boxes']:.2e} px, "
                  f"scores {report['max_abs_scores']:.2e} (tolerance {report['atol_boxes']:g} px / "
                  f"{report['atol_scores']:g}) [green]ok[/]")
    if int8:
        _quantize(path, data, calib_images, check)


def _check_int8_usage(int8: bool, fmt: str, data: str | None, calib_images: int | None, half: bool, nms: bool,
                      opset: int) -> None:
    """--int8's one-line usage errors, before anything is exported."""
    from yoloswap.errors import UsageError

    if not int8:
        if data is not None or calib_images is not None:
            raise UsageError("--data and --calib-images calibrate --int8: add --int8, or leave them out")
        return
    if data is None:
        raise UsageError("--int8 needs --data DATA.yaml: its train images calibrate the int8 model")
    if fmt != "onnx":
        raise UsageError(f"--int8 is supported with --format onnx only, got --format {fmt} "
                         "(OpenVINO int8 would need nncf)")
    if calib_images is not None and calib_images < 1:
        raise UsageError(f"--calib-images must be at least 1, got {calib_images}")
    from yoloswap.deploy.quantize import check_int8_options

    check_int8_options(half, nms, opset)
    if not Path(data).expanduser().exists():  # before the fp32 export, not after it
        from yoloswap.errors import DataError

        raise DataError(f"--data {data}: data YAML not found (nor a data set folder)")


def _quantize(fp32: Path, data: str, calib_images: int | None, check: bool) -> None:
    """Write and report the int8 file; with ``check``, score it against the fp32 one."""
    from yoloswap.cli.console import err, out
    from yoloswap.deploy.quantize import quantize_export, quantized_ops

    count = calib_images or DEFAULT_CALIB_IMAGES
    with err.status(f"quantising {fp32} to int8 on up to {count} calibration images"):
        path, meta = quantize_export(fp32, data, count)
    calib, ops = meta["calibration"], quantized_ops(path)
    out.print(f"quantised to int8 (QDQ, {calib['images']} {calib['split']} images of {calib['data']}) → {path} "
              f"({path.stat().st_size / 1e6:.1f} MB, {ops.get('QuantizeLinear', 0)} QuantizeLinear; "
              f"head decode kept float: {calib['float_nodes']} nodes)")
    if check:
        _int8_check(fp32, path, data)


INT8_CHECK_IMAGES = 16  # val images scored by each file
INT8_CHECK_ROUNDS = 6  # timing rounds; each times 2 calls of each file, after one untimed round


def _int8_check(fp32: Path, int8: Path, data: str) -> None:
    """fp32 and int8 side by side: mAP on the first few val images and median latency on ONNX Runtime's CPU.

    On by default with --int8 (``--no-check`` skips it), because quantisation is the one export step that can
    quietly cost accuracy, and a speed-up means little without the mAP next to it. Kept cheap: 16 val images and
    14 calls per file, a few seconds for yolov5s at 640 px on a laptop CPU; a few images give a noisy mAP, so for
    the real figure run ``yoloswap val`` on the int8 file. Lives in the CLI layer: deploy/ never imports
    evaluation/.
    """
    from rich.table import Table

    from yoloswap.cli.console import err, out
    from yoloswap.deploy.runtimes import load_runtime
    from yoloswap.evaluation.workflow import validate_file

    files = {"fp32": fp32, "int8": int8}
    with err.status(f"scoring fp32 and int8 on {INT8_CHECK_IMAGES} val images"):
        scores = {k: validate_file(p, data, workers=0, device="cpu", max_images=INT8_CHECK_IMAGES)
                  for k, p in files.items()}
        runtimes = {k: load_runtime(p, "cpu") for k, p in files.items()}
        batch = runtimes["fp32"].fixed_batch or 1
        ms = _alternating_latency(runtimes, scores["fp32"].img_size, batch)
    out.print(f"fp32 vs int8 on {scores['fp32'].images} val images (ONNX Runtime, CPU, batch {batch}, "
              f"{scores['fp32'].img_size} px):")
    table = Table()
    for col in ("file", "mAP@.5:.95", "mAP@.5", "median ms"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for key, path in files.items():
        metrics = scores[key].metrics
        table.add_row(f"{key} {path.name}", f"{metrics['map']:.4f}", f"{metrics['map50']:.4f}", f"{ms[key]:.2f}")
    out.print(table)
    m32, m8 = scores["fp32"].metrics, scores["int8"].metrics
    out.print(f"int8: mAP@.5:.95 {m8['map'] - m32['map']:+.4f}, mAP@.5 {m8['map50'] - m32['map50']:+.4f}, "
              f"{ms['fp32'] / ms['int8']:.2f}× the fp32 speed")


def _alternating_latency(runtimes: dict, img_size: int, batch: int) -> dict[str, float]:
    """Median ms per call of each runtime, timed in alternating rounds so that a busy moment of the machine
    (or its clock settling) slows both files alike, not whichever was timed first."""
    import statistics

    import torch

    from yoloswap.deploy.benchmark import time_calls

    x = torch.full((batch, 3, img_size, img_size), 114 / 255)
    times: dict[str, list[float]] = {k: [] for k in runtimes}
    for round_ in range(INT8_CHECK_ROUNDS + 1):
        for key, runtime in runtimes.items():
            taken = time_calls(lambda: runtime.infer(x), 0, 2)
            if round_:  # the first round warms both up
                times[key] += taken
    return {key: statistics.median(t) for key, t in times.items()}


def benchmark(
    weights: Annotated[Optional[Path], Opt("--weights", "-w", rich_help_panel=H.MODEL, help="A checkpoint (.pt), or an exported .onnx / OpenVINO .xml.")] = None,
    backbone: Annotated[Optional[str], Opt("--backbone", "-b", rich_help_panel=H.MODEL, help="A backbone to time untrained (preset, timm:NAME, torchvision:NAME).")] = None,
    device: Annotated[str, Opt(rich_help_panel=H.HARDWARE, help="auto, cpu, cuda or cuda:N.")] = "auto",
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help="Input size (default: the weights' size, else 640).")] = None,
    batch: Annotated[int, Opt("--batch", rich_help_panel=H.HARDWARE, help="Images per call (latency is per call, throughput per image).")] = 1,
    num_classes: Annotated[int, Opt("--num-classes", rich_help_panel=H.MODEL, help="Classes of an untrained --backbone detector.")] = 80,
    iters: Annotated[int, Opt("--iters", rich_help_panel=H.OUTPUT, help="Timed calls per runtime (after warm-up).")] = 30,
    warmup: Annotated[int, Opt("--warmup", rich_help_panel=H.OUTPUT, help="Untimed calls first.")] = 5,
    runtimes: Annotated[str, Opt("--runtimes", rich_help_panel=H.HARDWARE, help="Comma-separated: pytorch, onnxruntime, openvino.")] = "pytorch,onnxruntime",
    as_json: Annotated[bool, H.flag("--json", rich_help_panel=H.OUTPUT, help="Print the figures as JSON on stdout.")] = False,
    no_reparam: Annotated[bool, H.flag("--no-reparam", rich_help_panel=H.MODEL, help="Time the training form (RepVGG/MobileOne branches unfused) instead of the deployed, fused one.")] = False,
) -> None:
    """Latency (median, p90 ms after warm-up) and throughput in PyTorch, ONNX Runtime and OpenVINO; params and GFLOPs."""
    from rich.table import Table

    from yoloswap.cli.console import err, out, print_json
    from yoloswap.deploy import benchmark as bench
    from yoloswap.deploy.runtimes import is_exported, load_runtime
    from yoloswap.errors import UsageError
    from yoloswap.device import resolve_device

    if (weights is None) == (backbone is None):
        raise UsageError("give either --weights FILE or --backbone NAME")
    if batch < 1 or iters < 1 or warmup < 0:
        raise UsageError(f"--batch and --iters must be at least 1 and --warmup >= 0, got {batch}, {iters}, {warmup}")
    wanted = tuple(r.strip() for r in runtimes.split(",") if r.strip())
    unknown = [r for r in wanted if r not in bench.RUNTIME_NAMES]
    if unknown:
        raise UsageError(f"--runtimes: unknown {unknown}; choose from {', '.join(bench.RUNTIME_NAMES)}")
    dev = resolve_device(device)
    with err.status("benchmarking"):
        if weights is not None and is_exported(weights):
            runtime = load_runtime(weights, dev)
            size = runtime.size_for(img_size)
            report = {"backbone": runtime.backbone, "params_m": None, "gflops": None, "notes": [],
                      "timings": [bench.bench_runtime(runtime, size, batch, warmup, iters).to_dict()]}
        else:
            model, names, name, size = _model_for_benchmark(weights, backbone, num_classes, img_size, not no_reparam)
            report = bench.benchmark_detector(model, names, name, size, batch, dev, wanted, warmup, iters)
    report["weights"] = str(weights) if weights else None
    if as_json:
        print_json(report)
        return
    size_text = "" if report["params_m"] is None else f", {report['params_m']:.2f} M params, {report['gflops']:.2f} GFLOPs"
    table = Table(title=f"{report['backbone']}{size_text}")
    for col in ("runtime", "device", "input", "median ms", "p90 ms", "images/s"):
        table.add_column(col, justify="left" if col in ("runtime", "device") else "right")
    for t in report["timings"]:
        table.add_row(t["runtime"], t["device"], f"{t['batch']}×{t['img_size']}²", f"{t['median_ms']:.2f}",
                      f"{t['p90_ms']:.2f}", f"{t['images_per_s']:.1f}")
    out.print(table)
    for note in report["notes"]:
        err.print(f"[yellow]note:[/] {note}")


def _model_for_benchmark(weights: Path | None, backbone: str | None, num_classes: int, img_size: int | None,
                         reparam: bool = True):
    """(model, names, backbone name, size) from a checkpoint, or an untrained detector for a backbone name; in
    its inference form (deploy/reparam.py) unless ``reparam`` is False."""
    if weights is not None:
        from yoloswap.deploy.runtimes import TorchRuntime

        runtime = TorchRuntime(weights, "cpu", reparam=reparam)
        return runtime.model, runtime.names, runtime.backbone, runtime.size_for(img_size)
    from yoloswap.assembly import build_detector
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.probe import fit_to_size

    size = img_size or 640
    preset = fit_to_size(resolve_backbone(backbone), (size, size))
    model, _ = build_detector(preset, num_classes, (size, size))
    if reparam:
        from yoloswap.deploy.reparam import reparameterized

        model = reparameterized(model)
    return model, [f"class{i}" for i in range(num_classes)], preset.name, size
