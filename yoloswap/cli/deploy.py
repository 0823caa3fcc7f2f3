"""Commands for deployment: export (ONNX / TorchScript / OpenVINO) and benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H

Opt = typer.Option


def export(
    weights: Annotated[Path, Opt("--weights", "-w", rich_help_panel=H.MODEL, help="A yoloswap checkpoint (best.pt / last.pt).")],
    fmt: Annotated[str, Opt("--format", "-f", rich_help_panel=H.OUTPUT, help="onnx, torchscript or openvino.")] = "onnx",
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help="Input size (default: the training size).")] = None,
    batch: Annotated[int, Opt("--batch", rich_help_panel=H.HARDWARE, help="Batch size of the graph (ignored with --dynamic).")] = 1,
    dynamic: Annotated[bool, H.flag("--dynamic", rich_help_panel=H.OUTPUT, help="Free batch, height and width.")] = False,
    half: Annotated[bool, H.flag("--half", rich_help_panel=H.HARDWARE, help="fp16 weights and input (needs --device cuda).")] = False,
    opset: Annotated[Optional[int], Opt("--opset", rich_help_panel=H.OUTPUT, help="ONNX opset (default 17).")] = None,
    nms: Annotated[bool, H.flag("--nms", rich_help_panel=H.DETECTION, help="Append NMS: outputs (B, max-det, 6) [x1, y1, x2, y2, score, cls].")] = False,
    conf: Annotated[float, Opt(rich_help_panel=H.DETECTION, help="--nms score threshold.")] = 0.25,
    iou: Annotated[float, Opt(rich_help_panel=H.DETECTION, help="--nms IoU threshold.")] = 0.45,
    max_det: Annotated[int, Opt("--max-det", rich_help_panel=H.DETECTION, help="--nms detections per image.")] = 300,
    out_path: Annotated[Optional[Path], Opt("--out", rich_help_panel=H.OUTPUT, help="Output file (default: next to the weights).")] = None,
    device: Annotated[str, Opt(rich_help_panel=H.HARDWARE, help="cpu or cuda (export traces on it).")] = "cpu",
    check: Annotated[bool, H.flag("--check/--no-check", rich_help_panel=H.OUTPUT, help="Run the exported ONNX / OpenVINO file and compare with PyTorch.")] = True,
) -> None:
    """Export a trained detector: the file takes 0-255 RGB (B, 3, H, W) and carries names, strides and size."""
    from yoloswap.cli.console import err, out
    from yoloswap.deploy.export import DEFAULT_OPSET, FORMATS, ExportSpec, export_model, require_format
    from yoloswap.deploy.runtimes import TorchRuntime
    from yoloswap.errors import UsageError
    from yoloswap.device import resolve_device

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    require_format(fmt)
    source = TorchRuntime(weights, "cpu")
    spec = ExportSpec(img_size=source.size_for(img_size), batch=batch, dynamic=dynamic, half=half,
                      opset=opset or DEFAULT_OPSET, nms=nms, conf=conf, iou=iou, max_det=max_det)
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
            model, names, name, size = _model_for_benchmark(weights, backbone, num_classes, img_size)
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


def _model_for_benchmark(weights: Path | None, backbone: str | None, num_classes: int, img_size: int | None):
    """(model, names, backbone name, size) from a checkpoint, or an untrained detector for a backbone name."""
    if weights is not None:
        from yoloswap.deploy.runtimes import TorchRuntime

        runtime = TorchRuntime(weights, "cpu")
        return runtime.model, runtime.names, runtime.backbone, runtime.size_for(img_size)
    from yoloswap.assembly import build_detector
    from yoloswap.backbones.resolve import resolve_backbone
    from yoloswap.backbones.probe import fit_to_size

    size = img_size or 640
    preset = fit_to_size(resolve_backbone(backbone), (size, size))
    model, _ = build_detector(preset, num_classes, (size, size))
    return model, [f"class{i}" for i in range(num_classes)], preset.name, size
