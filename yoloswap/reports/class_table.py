"""The per-class table ``val`` and the end of ``train`` print: one row per class plus "all", as a rich Table
(the layout YOLOv5 users read: class, images, instances, P, R, mAP50, mAP50-95)."""

from __future__ import annotations

from typing import Any


def class_table(details: Any, metrics: dict, title: str = "") -> Any:
    """A rich Table of ``details`` (evaluation.metrics.Details); ``metrics`` (the COCO summary) gives the
    caption: AP by object size, AR@100 and the F1-optimal confidence the P and R columns are read at."""
    from rich.table import Table

    caption = (f"P and R at confidence {details.best_conf:.2f} (the best mean F1)\nAP small "
               f"{metrics.get('map_small', 0.0):.3f}, medium {metrics.get('map_medium', 0.0):.3f}, large "
               f"{metrics.get('map_large', 0.0):.3f}; AR@100 {metrics.get('mar_100', 0.0):.3f}")
    table = Table(title=title or None, caption=caption, caption_justify="left")
    table.add_column("class")
    for name in ("images", "instances", "P", "R", "mAP50", "mAP50-95"):
        table.add_column(name, justify="right")
    for row in (*details.rows, details.overall):
        table.add_row(row.name, str(row.images), str(row.instances), f"{row.precision:.3f}", f"{row.recall:.3f}",
                      f"{row.ap50:.3f}", f"{row.ap:.3f}", style="bold" if row is details.overall else None,
                      end_section=row is details.rows[-1] if details.rows else False)
    return table
