"""The shipped compatibility table: which timm and torchvision models serve as backbones, measured by
``bench/coverage.py`` with the library versions it names.

``list-backbones --all`` reads this file instead of building 1,400 models; each row says the library version it
was measured with, so a user on another version knows the status is a record, not a promise.
"""

from __future__ import annotations

import csv
import fnmatch
from importlib import metadata, resources
from pathlib import Path

COLUMNS = ("source", "name", "family", "version", "status", "channels", "strides", "declared", "params",
           "img_size", "step", "seconds", "reason")  # step: input side of the training step taken ("" none)
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


def select(rows: list[dict[str, str]], source: str | None = None, pattern: str | None = None) -> list[dict[str, str]]:
    """Rows of one library source (checked against the source table) whose names match a glob."""
    if source is not None:
        from yoloswap.backbones.sources import get_source, library_sources
        from yoloswap.errors import UsageError

        if get_source(source).name not in library_sources():
            raise UsageError(f"--source {source}: the table covers {' and '.join(library_sources())} only")
        rows = [r for r in rows if r["source"] == source]
    if pattern:
        rows = [r for r in rows if fnmatch.fnmatchcase(r["name"], pattern)
                or fnmatch.fnmatchcase(f"{r['source']}:{r['name']}", pattern)]
    return rows


def installed_versions() -> dict[str, str | None]:
    """The installed timm and torchvision versions, to flag rows measured with another one."""
    found: dict[str, str | None] = {}
    for lib in ("timm", "torchvision"):
        try:
            found[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            found[lib] = None
    return found
