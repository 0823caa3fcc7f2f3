"""``check-data``: the look a user takes at a data set before training on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from yoloswap.cli import help as H


def check_data(
    data: Annotated[Path, typer.Option("--data", rich_help_panel=H.DATA, help="Data YAML, or a data set folder: "
                                       "Roboflow/hub export with data.yaml, VOC devkit, Roboflow COCO export, "
                                       "Label Studio images/ + labels/ + classes.txt.")],
    plot: Annotated[Optional[Path], typer.Option("--plot", rich_help_panel=H.OUTPUT,
                                                 help="Where to write the labels picture.")] = Path("labels.png"),
    as_json: Annotated[bool, H.flag("--json", rich_help_panel=H.OUTPUT,
                                    help="Print JSON to stdout instead of a table.")] = False,
) -> None:
    """Images and boxes per split, boxes per class, box sizes, what would be skipped or dropped and why."""
    import warnings

    from yoloswap.cli.console import err, out, print_json
    from yoloswap.data.check import check_data as summarise
    from yoloswap.data.check import label_arrays
    from yoloswap.data.formats import DataWarning, load_data_config
    from yoloswap.reports.charts import plot_labels

    with warnings.catch_warnings():  # notes and what was left out are in the report, not a second time as warnings
        warnings.simplefilter("ignore", DataWarning)
        cfg = load_data_config(data)
        report = summarise(cfg)
    if plot is not None:
        plot_labels(*label_arrays(cfg.train.samples), cfg.names, plot)
        report["plot"] = str(plot)
    if as_json:
        print_json(report)
        return
    err.print(f"{cfg.source}: {cfg.layout}, format {cfg.format}; classes: {', '.join(cfg.names)}")
    for note in cfg.notes:
        err.print(f"note: {note}")
    out.print(_table(report))
    for name, s in report["splits"].items():
        for what, items in (("skipped", s["skipped"]), ("dropped", s["dropped"])):
            for item in items:
                out.print(f"{name}: {what}: {item}", markup=False, highlight=False)
    if plot is not None:
        err.print(f"wrote {plot}")


def _table(report: dict):
    from rich.table import Table

    splits = report["splits"]
    table = Table(title="data check")
    table.add_column("")
    for name in splits:
        table.add_column(name, justify="right")

    def wh(v):
        return "-" if v is None else f"{v[0]:g} x {v[1]:g}"

    rows = [("images", lambda s: str(s["images"])), ("boxes", lambda s: str(s["boxes"])),
            ("images without boxes", lambda s: str(s["images_without_boxes"])),
            ("ignored boxes (crowd, difficult)", lambda s: str(s["ignored_boxes"])),
            ("median box w x h (px)", lambda s: wh(s["median_box_wh"])),
            ("median box w x h (of image)", lambda s: wh(s["median_box_wh_relative"])),
            ("smallest box w x h (px)", lambda s: wh(s["smallest_box_wh"])),
            ("skipped images", lambda s: str(len(s["skipped"]))),
            ("images that lost boxes", lambda s: str(len(s["dropped"])))]  # fmt: skip
    for label, get in rows:
        table.add_row(label, *(get(s) for s in splits.values()))
    for name in report["names"]:
        table.add_row(f"boxes: {name}", *(str(s["per_class"][name]) for s in splits.values()))
    return table
