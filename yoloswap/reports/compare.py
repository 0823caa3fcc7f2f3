"""Which backbone for my data and my device: train several under one budget and recipe, then set accuracy
against speed.

Every backbone trains through the library's ``trainer.train`` into ``OUT/runs/<backbone>``; its row (accuracy
from the best checkpoint, latency measured here, size) is saved as ``row.json`` beside it. That file is what
makes ``compare`` resumable: a backbone with a row is never trained again, one with only ``weights/last.pt``
resumes where it stopped. ``--runs`` builds the same rows from finished run folders instead.

The report is ``compare.csv`` (every figure), ``compare.md`` (sorted by mAP, Pareto-optimal rows marked) and
``compare.png`` (mAP@.5:.95 against latency).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from yoloswap.errors import DataError, TrainingError

ROW_FILE = "row.json"


@dataclass(frozen=True)
class CompareRow:
    backbone: str
    map: float  # COCO mAP@.5:.95 of the best checkpoint on the validation split
    map50: float
    latency_ms: float  # PyTorch eager, median of one image at img_size on ``device``
    latency_p90_ms: float
    onnx_ms: float | None  # ONNX Runtime median (None without the export extras)
    params_m: float
    gflops: float
    img_size: int
    device: str
    epochs: int
    run: str  # the run folder
    pareto: bool = False
    openvino_ms: float | None = None  # OpenVINO median (None without yoloswap[openvino])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CSV_COLUMNS = [f.name for f in dataclasses.fields(CompareRow)]


def run_name(backbone: str) -> str:
    """A folder name for a backbone spec (``timm:convnext_atto`` → ``timm-convnext_atto``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(backbone).stem if backbone.endswith((".yaml", ".yml")) else backbone)


# ------------------------------------------------------------------------------------------------ Pareto


def mark_pareto(rows: Sequence[CompareRow]) -> list[CompareRow]:
    """Flag the rows no other row beats: none is at least as fast and as accurate and strictly better in one."""

    def dominated(r: CompareRow) -> bool:
        return any(o.latency_ms <= r.latency_ms and o.map >= r.map and (o.latency_ms < r.latency_ms or o.map > r.map)
                   for o in rows)

    return [dataclasses.replace(r, pareto=not dominated(r)) for r in rows]


def sort_by_map(rows: Sequence[CompareRow]) -> list[CompareRow]:
    return sorted(rows, key=lambda r: (-r.map, r.latency_ms))


# ------------------------------------------------------------------------------------------------ rows from runs


def best_weights(run: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run / "weights" / name).is_file():
            return run / "weights" / name
    raise DataError(f"{run}: not a finished run folder (no weights/best.pt or weights/last.pt)")


def row_from_run(run: Path, device: torch.device, warmup: int = 3, iters: int = 10,
                 img_size: int | None = None) -> CompareRow:
    """Accuracy recorded in the run's best checkpoint, and speed and size measured now on ``device``."""
    from yoloswap.deploy import benchmark as bench
    from yoloswap.checkpoint import load_checkpoint
    from yoloswap.assembly import detector_from_checkpoint, inference_size

    path = best_weights(Path(run))
    ckpt = load_checkpoint(path)
    model, preset, _, names, _ = detector_from_checkpoint(ckpt, path)
    options = ckpt["config"]["options"]
    size = inference_size(preset, int(options["img_size"]), img_size, path)
    metrics = _accuracy(ckpt, Path(run))
    runtimes = ("pytorch", "onnxruntime", *(("openvino",) if bench.openvino_available() else ()))
    report = bench.benchmark_detector(model, names, preset.name, size, 1, device, runtimes, warmup, iters)
    by_runtime = {t["runtime"]: t for t in report["timings"]}
    torch_t = by_runtime["pytorch"]
    return CompareRow(
        backbone=str(options.get("backbone", preset.name)), map=round(metrics["map"], 4),
        map50=round(metrics["map50"], 4), latency_ms=torch_t["median_ms"], latency_p90_ms=torch_t["p90_ms"],
        onnx_ms=by_runtime["onnxruntime"]["median_ms"] if "onnxruntime" in by_runtime else None,
        params_m=report["params_m"], gflops=report["gflops"], img_size=size, device=device.type,
        epochs=epochs_trained(Path(run), ckpt), run=str(run),
        openvino_ms=by_runtime["openvino"]["median_ms"] if "openvino" in by_runtime else None,
    )


def epochs_trained(run: Path, ckpt: dict) -> int:
    """Epochs the run trained: its metrics.csv rows (the best checkpoint may come from an earlier epoch), else
    the checkpoint's own epoch."""
    from yoloswap.reports.plots import read_metrics_csv

    csv_path = run / "metrics.csv"
    if csv_path.is_file():
        epochs, _ = read_metrics_csv(csv_path)
        if epochs:
            return int(max(epochs))
    return int(ckpt.get("epoch", -1)) + 1


def _accuracy(ckpt: dict, run: Path) -> dict:
    """mAP of the best checkpoint; from metrics.csv (best epoch) if the checkpoint holds none."""
    metrics = ckpt.get("metrics") or {}
    if "map" in metrics:
        return {"map": float(metrics["map"]), "map50": float(metrics.get("map50", 0.0))}
    from yoloswap.reports.plots import read_metrics_csv

    csv_path = run / "metrics.csv"
    if csv_path.is_file():
        _, columns = read_metrics_csv(csv_path)
        key = next((k for k in columns if k.lower().endswith("map50-95")), None)
        key50 = next((k for k in columns if k.lower().endswith("map50")), None)
        scored = [i for i, v in enumerate(columns[key]) if v == v] if key else []  # v == v: not NaN
        if scored:
            best = max(scored, key=columns[key].__getitem__)
            return {"map": columns[key][best], "map50": columns[key50][best] if key50 else 0.0}
    raise DataError(f"{run}: no validation metrics recorded (checkpoint or metrics.csv)")


# ------------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class CompareStatus:
    """One line of the progress view."""

    backbone: str
    state: str  # queued | training | resuming | measuring | done | reused
    row: CompareRow | None = None


def compare_backbones(backbones: Sequence[str], base_options, out: Path, device: torch.device, train: Callable,
                      on_status: Callable[[list[CompareStatus]], None] = lambda s: None,
                      console=None) -> list[CompareRow]:
    """Train each backbone with ``base_options`` (a TrainOptions; only ``backbone`` changes), measure, return rows.

    ``train`` is the training entry point (``yoloswap.train.loop.train``), passed in so that reports never import
    the training package. Resumable: a backbone whose ``row.json`` exists is read back, one with
    ``weights/last.pt`` resumes.
    """
    out = Path(out)
    statuses = [CompareStatus(b, "queued") for b in backbones]
    rows: list[CompareRow] = []
    for i, backbone in enumerate(backbones):
        run = out / "runs" / run_name(backbone)
        row_path = run / ROW_FILE
        if row_path.is_file():
            row = CompareRow(**json.loads(row_path.read_text()))
            statuses[i] = CompareStatus(backbone, "reused", row)
            on_status(statuses)
            rows.append(row)
            continue
        options = dataclasses.replace(base_options, backbone=backbone)
        last = run / "weights" / "last.pt"
        resume = run if last.is_file() and not _finished(last) else None
        statuses[i] = CompareStatus(backbone, "resuming" if resume else "training")
        on_status(statuses)
        if not last.is_file() or resume is not None:
            train(options, out=run, exist_ok=True, resume=resume, console=console)
        statuses[i] = CompareStatus(backbone, "measuring")
        on_status(statuses)
        row = row_from_run(run, device)
        row_path.parent.mkdir(parents=True, exist_ok=True)
        row_path.write_text(json.dumps(row.to_dict(), indent=1))
        statuses[i] = CompareStatus(backbone, "done", row)
        on_status(statuses)
        rows.append(row)
    return rows


def _finished(last: Path) -> bool:
    """True when ``last.pt`` holds the run's final epoch (its options record the epochs, refitted to --time)."""
    from yoloswap.checkpoint import load_checkpoint

    try:
        ckpt = load_checkpoint(last)
        return int(ckpt["epoch"]) + 1 >= int(ckpt["config"]["options"]["epochs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"{last}: cannot tell whether this run finished ({exc}); delete its folder") from None


# ------------------------------------------------------------------------------------------------ report


def write_report(rows: Sequence[CompareRow], out: Path, title: str = "") -> dict[str, Path]:
    """compare.csv, compare.md and compare.png in ``out``; rows are Pareto-marked and sorted by mAP."""
    from yoloswap.reports.plots import plot_compare

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = sort_by_map(mark_pareto(rows))
    csv_path = out / "compare.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow(r.to_dict())
    md_path = out / "compare.md"
    md_path.write_text(markdown_table(rows, title))
    png_path = plot_compare(rows, out / "compare.png", title=title)
    return {"csv": csv_path, "md": md_path, "png": png_path}


def markdown_table(rows: Sequence[CompareRow], title: str = "") -> str:
    """Rows sorted by mAP; ★ marks the Pareto front (no other row is both faster and more accurate)."""
    lines = [f"# {title}", ""] if title else []
    onnx = any(r.onnx_ms is not None for r in rows)
    header = ["", "backbone", "mAP@.5:.95", "mAP@.5", "latency ms (median)", "p90 ms"]
    header += ["ONNX Runtime ms"] if onnx else []
    openvino = any(r.openvino_ms is not None for r in rows)
    header += ["OpenVINO ms"] if openvino else []
    header += ["params (M)", "GFLOPs", "epochs"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in sort_by_map(rows):
        cells = ["★" if r.pareto else "", f"`{r.backbone}`", f"{r.map:.4f}", f"{r.map50:.4f}", f"{r.latency_ms:.2f}",
                 f"{r.latency_p90_ms:.2f}"]
        cells += [f"{r.onnx_ms:.2f}" if r.onnx_ms is not None else "-"] if onnx else []
        cells += [f"{r.openvino_ms:.2f}" if r.openvino_ms is not None else "-"] if openvino else []
        cells += [f"{r.params_m:.2f}", f"{r.gflops:.2f}", str(r.epochs)]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        first = rows[0]
        lines += ["", f"Latency: PyTorch eager, batch 1, {first.img_size}×{first.img_size}, {first.device}. "
                  "★ = Pareto-optimal (no other backbone is both faster and more accurate)."]
    return "\n".join(lines) + "\n"
