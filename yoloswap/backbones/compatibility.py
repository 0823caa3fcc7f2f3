"""The shipped compatibility table: which timm and torchvision models serve as backbones, measured by
``bench/coverage.py`` with the library versions it names.

``list-backbones --all`` reads this file instead of building 1,400 models; each row says the library version it
was measured with, so a user on another version knows the status is a record, not a promise.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

COLUMNS = ("source", "name", "family", "version", "status", "channels", "strides", "declared", "params",
           "img_size", "seconds", "reason")
CSV_PATH = Path(__file__).resolve().parent / "compatibility.csv"


def read_compatibility() -> list[dict[str, str]]:
    """Every row of the shipped table (empty when the package was built without it)."""
    path = resources.files("yoloswap.backbones") / "compatibility.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_csv(rows: list[dict], path: Path = CSV_PATH) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
