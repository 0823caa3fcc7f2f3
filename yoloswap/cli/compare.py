"""``yoloswap compare``: which backbone for my data and my device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H

Opt = typer.Option


def compare(
    backbones: Annotated[Optional[str], Opt("--backbones", "-b", rich_help_panel=H.MODEL, help="Comma-separated backbones to train and compare (presets, timm:NAME, torchvision:NAME).")] = None,
    folders: Annotated[Optional[list[Path]], typer.Argument(show_default=False, help="Run folders, with --runs.")] = None,
    runs: Annotated[bool, H.flag("--runs", rich_help_panel=H.DATA, help="Compare the finished run folders given after it instead (`--runs runs/train/exp*`).")] = False,
    seeds: Annotated[int, Opt("--seeds", min=1, rich_help_panel=H.OPTIMIZATION, help="Train every backbone this many times (seeds --seed onwards) and report mean ± std of mAP, marking rows within the noise.")] = 1,
    data: Annotated[Optional[str], Opt("--data", rich_help_panel=H.DATA, help="Data YAML (default: the built-in set).")] = None,
    epochs: Annotated[Optional[int], Opt(rich_help_panel=H.OPTIMIZATION, help="Epochs for every backbone (default: as `train`).")] = None,
    time_budget: Annotated[Optional[float], Opt("--time", rich_help_panel=H.OPTIMIZATION, help="Minutes of training for every backbone.")] = None,
    img_size: Annotated[Optional[int], Opt("--img-size", rich_help_panel=H.DATA, help="Training and benchmark size (default: as `train`).")] = None,
    batch_size: Annotated[Optional[int], Opt("--batch-size", rich_help_panel=H.OPTIMIZATION, help="Images per step, as in `train` (default: train's).")] = None,
    device: Annotated[Optional[str], Opt(rich_help_panel=H.HARDWARE, help="auto, cpu, cuda or cuda:N (training and latency; default auto).")] = None,
    weights: Annotated[Optional[str], Opt(rich_help_panel=H.MODEL, help="Backbone weights for every backbone (none = random init). Default: each preset's.")] = None,
    out: Annotated[Optional[Path], Opt("--out", rich_help_panel=H.OUTPUT, help="Comparison folder (default runs/compare/expN); rerun with the same --out to resume.")] = None,
    workers: Annotated[Optional[int], Opt(rich_help_panel=H.HARDWARE, help="DataLoader worker processes (default: as `train`).")] = None,
    seed: Annotated[Optional[int], Opt(rich_help_panel=H.OPTIMIZATION, help="Random seed, the same for every backbone (default: as `train`).")] = None,
) -> None:
    """Train each backbone under the same budget and recipe, then compare accuracy, latency and size.

    Writes compare.csv, compare.md (sorted by mAP, Pareto-optimal rows marked) and compare.png.
    """
    from yoloswap.cli.console import err
    from yoloswap.cli.console import out as stdout
    from yoloswap.reports.compare import compare_backbones, row_from_run, write_report
    from yoloswap.run_folders import new_run_dir
    from yoloswap.training.loop import train as run_training
    from yoloswap.errors import UsageError
    from yoloswap.device import resolve_device

    if folders and not runs:
        raise UsageError(f"unexpected argument {str(folders[0])!r}: run folders follow --runs")
    if (backbones is None) == (not runs) or (runs and not folders):
        raise UsageError("give either --backbones A,B,... to train, or --runs DIR... to compare finished runs")
    dev = resolve_device(device or "auto")
    if runs:
        folder = out or new_run_dir(Path("runs/compare"))
        rows = []
        for run in folders:
            with err.status(f"measuring {run}"):
                rows.append(row_from_run(run, dev, img_size=img_size))
        title = f"{len(rows)} runs"
    else:
        names = [b.strip() for b in backbones.split(",") if b.strip()]
        if len(names) != len(set(names)) or not names:
            raise UsageError(f"--backbones {backbones!r}: give distinct, non-empty names")
        from yoloswap.backbones.resolve import resolve_backbone

        for name in names:  # a typo in the last name must not cost the training of the others first
            resolve_backbone(name)
        options = _options(data, epochs, time_budget, img_size, batch_size, device, weights, workers, seed)
        options.check()
        folder = out or new_run_dir(Path("runs/compare"))
        budget = f"{options.time:g} min" if options.time else f"{options.epochs} epochs"
        err.print(f"comparing {len(names)} backbones on {data or 'the built-in set'}, {budget} each, "
                  f"{options.img_size} px → {folder}")
        rows = compare_backbones(names, options, folder, dev, run_training, on_status=lambda s: err.print(_status_table(s)),
                                 console=err, seeds=seeds)
        title = f"{data or 'built-in set'}, {budget} per backbone, {options.img_size} px"
        title += f", {seeds} seeds" if seeds > 1 else ""
    paths = write_report(rows, folder, title=title)
    stdout.print(paths["md"].read_text())
    stdout.print(f"wrote {paths['csv']}, {paths['md']} and {paths['png']}")


def _options(data, epochs, time_budget, img_size, batch_size, device, weights, workers, seed):
    """The recipe every backbone shares: `train`'s defaults for this data, the same seed and budget."""
    from yoloswap.config.options import TrainOptions

    return TrainOptions.for_data(data, dict(
        epochs=epochs, time=time_budget, img_size=img_size, batch_size=batch_size, device=device, weights=weights,
        workers=workers, seed=seed,
    ))


def _status_table(statuses):
    """The progress view across backbones: state and, once measured, the figures."""
    from rich.table import Table

    colour = {"queued": "dim", "training": "yellow", "resuming": "yellow", "measuring": "cyan", "done": "green",
              "reused": "green"}
    table = Table(title="compare", title_justify="left")
    for col in ("backbone", "state", "mAP@.5:.95", "latency ms", "params M"):
        table.add_column(col, justify="left" if col in ("backbone", "state") else "right")
    for s in statuses:
        r = s.row
        table.add_row(s.backbone, f"[{colour.get(s.state, '')}]{s.state}[/]",
                      f"{r.map:.4f}" if r else "", f"{r.latency_ms:.2f}" if r else "", f"{r.params_m:.2f}" if r else "")
    return table
