"""Which backbone for my data and my device: train several under one budget and recipe, then set accuracy
against speed.

Every backbone trains through the library's ``trainer.train`` into ``OUT/runs/<backbone>``; its row (accuracy
from the best checkpoint, latency measured here, size) is saved as ``row.json`` beside it. That file is what
makes ``compare`` resumable: a backbone with a row is never trained again, one with only ``weights/last.pt``
resumes where it stopped. ``--runs`` builds the same rows from finished run folders instead.

The report is ``compare.csv`` (every figure), ``compare.md`` (sorted by mAP, Pareto-optimal rows marked) and
``compare.png`` (mAP@.5:.95 against latency).

Noise is part of the report. ``--seeds K`` trains every backbone K times (seeds ``seed … seed+K-1``, runs
``OUT/runs/<backbone>-seedS``); its row holds the mean mAP and its standard deviation over the seeds, and names the
rows it cannot be told apart from: those whose mean differs by at most two standard errors of the difference,
``2·sqrt((s1² + s2²)/K)`` (about a 95% band). Latency has noise too: a difference within
:func:`latency_noise` counts as a tie, so two copies of one model are never both "faster" than each other.
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
    run: str  # the run folder (with --seeds: the first seed's)
    pareto: bool = False
    seeds: int = 1  # runs averaged into this row (compare --seeds)
    map_std: float | None = None  # standard deviation of mAP@.5:.95 over the seeds (None: one run)
    label: str = ""  # how the report names the row: the backbone, or its run folder when backbones repeat
    ties: str = ""  # labels of the rows whose mAP is within the noise of this one ("" : none)
    openvino_ms: float | None = None  # OpenVINO median (None without yoloswap[openvino])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CSV_COLUMNS = [f.name for f in dataclasses.fields(CompareRow)]


def run_name(backbone: str) -> str:
    """A folder name for a backbone spec (``timm:convnext_atto`` → ``timm-convnext_atto``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(backbone).stem if backbone.endswith((".yaml", ".yml")) else backbone)


# ------------------------------------------------------------------------------------------------ Pareto

LATENCY_NOISE = 0.10  # latencies closer than this fraction of the smaller one are a tie (timing noise)
NOISE_SE = 2.0  # mAP means closer than this many standard errors of their difference are not distinguishable


def latency_noise(a: CompareRow, b: CompareRow) -> float:
    """How far apart two latencies must be to count as different: 10% of the smaller, or the larger of the two
    rows' own spread (p90 − median), whichever is wider. Identical models measured twice differ by a few ms."""
    spread = max(a.latency_p90_ms - a.latency_ms, b.latency_p90_ms - b.latency_ms, 0.0)
    return max(LATENCY_NOISE * min(a.latency_ms, b.latency_ms), spread)


def mark_pareto(rows: Sequence[CompareRow]) -> list[CompareRow]:
    """Flag the rows no other row beats: none is at least as fast (within timing noise) and as accurate, and
    strictly better in one (faster beyond the noise, or more accurate)."""

    def beats(o: CompareRow, r: CompareRow) -> bool:
        noise = latency_noise(o, r)
        as_fast = o.latency_ms <= r.latency_ms + noise
        return as_fast and o.map >= r.map and (o.latency_ms < r.latency_ms - noise or o.map > r.map)

    return [dataclasses.replace(r, pareto=not any(beats(o, r) for o in rows if o is not r)) for r in rows]


def label_rows(rows: Sequence[CompareRow]) -> list[CompareRow]:
    """Each row's label: its backbone, or ``backbone (run folder)`` where two rows share a backbone."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.backbone] = counts.get(r.backbone, 0) + 1
    return [dataclasses.replace(r, label=r.backbone if counts[r.backbone] == 1 else f"{r.backbone} ({Path(r.run).name})")
            for r in rows]


def within_noise(a: CompareRow, b: CompareRow) -> bool:
    """True when the mAP means of ``a`` and ``b`` differ by at most :data:`NOISE_SE` standard errors."""
    if a.map_std is None or b.map_std is None:
        return False  # one run each: no noise measured, nothing to say
    k = min(a.seeds, b.seeds)
    return abs(a.map - b.map) <= NOISE_SE * ((a.map_std ** 2 + b.map_std ** 2) / k) ** 0.5


def mark_ties(rows: Sequence[CompareRow]) -> list[CompareRow]:
    return [dataclasses.replace(r, ties=", ".join(o.label or o.backbone for o in rows
                                                  if o is not r and within_noise(r, o))) for r in rows]


def aggregate_seeds(rows: Sequence[CompareRow]) -> CompareRow:
    """One row from the runs of one backbone over several seeds: mean and standard deviation (n − 1) of mAP,
    mean mAP@.5, median latency (PyTorch and each exported runtime); size and epochs from the first."""
    import statistics

    def median_of(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    maps = [r.map for r in rows]
    first = rows[0]
    return dataclasses.replace(
        first, map=round(statistics.fmean(maps), 4), map50=round(statistics.fmean(r.map50 for r in rows), 4),
        map_std=round(statistics.stdev(maps), 4) if len(maps) > 1 else 0.0, seeds=len(rows),
        latency_ms=statistics.median(r.latency_ms for r in rows),
        latency_p90_ms=statistics.median(r.latency_p90_ms for r in rows),
        onnx_ms=median_of(r.onnx_ms for r in rows), openvino_ms=median_of(r.openvino_ms for r in rows))


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
    from yoloswap.deploy.reparam import reparameterized

    path = best_weights(Path(run))
    ckpt = load_checkpoint(path)
    model, preset, _, names, _ = detector_from_checkpoint(ckpt, path)
    model = reparameterized(model)  # ranked on the latency it deploys with
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
                      console=None, seeds: int = 1) -> list[CompareRow]:
    """Train each backbone with ``base_options`` (a TrainOptions; only ``backbone`` changes), measure, return rows.

    ``train`` is the training entry point (``yoloswap.training.loop.train``), passed in so that reports never import
    the training package. Resumable: a backbone whose ``row.json`` exists is read back, one with
    ``weights/last.pt`` resumes. ``seeds > 1``: each backbone trains with seeds ``base_options.seed`` onwards and
    its row is :func:`aggregate_seeds` of those runs.
    """
    out = Path(out)
    if seeds < 1:
        raise TrainingError(f"--seeds must be at least 1, got {seeds}")
    jobs = [(b, s) for b in backbones for s in range(base_options.seed, base_options.seed + seeds)]
    statuses = [CompareStatus(b if seeds == 1 else f"{b} seed {s}", "queued") for b, s in jobs]
    runs: list[CompareRow] = []
    for i, (backbone, seed) in enumerate(jobs):
        folder = run_name(backbone) if seeds == 1 else f"{run_name(backbone)}-seed{seed}"
        runs.append(_train_and_measure(backbone, dataclasses.replace(base_options, backbone=backbone, seed=seed),
                                       out / "runs" / folder, device, train, statuses, i, on_status, console))
    if seeds == 1:
        return runs
    return [aggregate_seeds(runs[k:k + seeds]) for k in range(0, len(runs), seeds)]


def _train_and_measure(backbone: str, options, run: Path, device, train, statuses, i, on_status, console):
    """One job of :func:`compare_backbones`: reuse its row, or resume or train the run; then measure it."""
    name = statuses[i].backbone
    row_path = run / ROW_FILE
    if row_path.is_file():
        row = CompareRow(**json.loads(row_path.read_text()))
        statuses[i] = CompareStatus(name, "reused", row)
        on_status(statuses)
        return row
    last = run / "weights" / "last.pt"
    resume = run if last.is_file() and not _finished(last) else None
    statuses[i] = CompareStatus(name, "resuming" if resume else "training")
    on_status(statuses)
    if not last.is_file() or resume is not None:
        train(options, out=run, exist_ok=True, resume=resume, console=console)
    statuses[i] = CompareStatus(name, "measuring")
    on_status(statuses)
    row = row_from_run(run, device)
    row_path.parent.mkdir(parents=True, exist_ok=True)
    row_path.write_text(json.dumps(row.to_dict(), indent=1))
    statuses[i] = CompareStatus(name, "done", row)
    on_status(statuses)
    return row


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
    rows = sort_by_map(mark_ties(label_rows(mark_pareto(rows))))
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
    """Rows sorted by mAP; ★ marks the Pareto front (no other row is both faster and more accurate). With seeds,
    mAP is ``mean ± std`` and a last column names the rows it is not distinguishable from."""
    lines = [f"# {title}", ""] if title else []
    rows = [r if r.label else dataclasses.replace(r, label=lr.label) for r, lr in zip(rows, label_rows(rows))]
    onnx = any(r.onnx_ms is not None for r in rows)
    seeded = any(r.map_std is not None for r in rows)
    header = ["", "backbone", "mAP@.5:.95" + (" (mean ± std)" if seeded else ""), "mAP@.5", "latency ms (median)",
              "p90 ms"]
    header += ["ONNX Runtime ms"] if onnx else []
    openvino = any(r.openvino_ms is not None for r in rows)
    header += ["OpenVINO ms"] if openvino else []
    header += ["params (M)", "GFLOPs", "epochs"] + (["seeds", "not distinguishable from"] if seeded else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in sort_by_map(rows):
        mean = f"{r.map:.4f} ± {r.map_std:.4f}" if r.map_std is not None else f"{r.map:.4f}"
        cells = ["★" if r.pareto else "", f"`{r.label}`", mean, f"{r.map50:.4f}", f"{r.latency_ms:.2f}",
                 f"{r.latency_p90_ms:.2f}"]
        cells += [f"{r.onnx_ms:.2f}" if r.onnx_ms is not None else "-"] if onnx else []
        cells += [f"{r.openvino_ms:.2f}" if r.openvino_ms is not None else "-"] if openvino else []
        cells += [f"{r.params_m:.2f}", f"{r.gflops:.2f}", str(r.epochs)]
        cells += [str(r.seeds), r.ties or "-"] if seeded else []
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        first = rows[0]
        lines += ["", f"Latency: PyTorch eager, batch 1, {first.img_size}×{first.img_size}, {first.device}. "
                  "★ = Pareto-optimal (no other backbone is both faster and more accurate; latencies within "
                  f"{LATENCY_NOISE:.0%} or their p90 spread are a tie)."]
        if seeded:
            lines += [f"mAP: mean ± standard deviation over the seeds; rows whose means differ by at most "
                      f"{NOISE_SE:g} standard errors of the difference are not distinguishable."]
    return "\n".join(lines) + "\n"
