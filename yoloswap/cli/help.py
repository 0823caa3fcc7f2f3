"""Help that teaches: the panels every command groups its options into, and booleans that read as flags.

rich draws the panels (``rich_help_panel``); one list of names here keeps them the same in every command.
"""

from __future__ import annotations

from typing import Any

import typer
import typer.rich_utils

DATA = "Data"
MODEL = "Model"
OPTIMIZATION = "Optimization"
AUGMENTATION = "Augmentation"
DETECTION = "Detection"
OUTPUT = "Run and output"
HARDWARE = "Hardware"

# One space between the columns of an options table, not typer's two: with --long-name, -short, --no-negative,
# <metavar> and help side by side, two-space gaps leave an 80-column terminal too narrow, and rich then cuts the
# widest column (an option name: "--min-weights-fracti…"). tests/test_messages.py checks every command at 80.
typer.rich_utils.STYLE_OPTIONS_TABLE_PADDING = (0, 1, 0, 0)


def flag(*names: str, **kwargs: Any) -> Any:
    """A boolean option shown as a bare flag (typer would otherwise print a ``<bool>`` placeholder after it)."""
    return typer.Option(*names, metavar="", **kwargs)


def _bare_help_flag(option: Any) -> Any:
    if option is not None:
        option.metavar = ""  # typer shows its own -h/--help as taking a <bool> otherwise
    return option


class Command(typer.core.TyperCommand):
    """A command whose ``--help`` reads as the flag it is."""

    def get_help_option(self, ctx: Any) -> Any:
        return _bare_help_flag(super().get_help_option(ctx))


class Group(typer.core.TyperGroup):
    """The ``yoloswap`` group, with the same ``--help``."""

    def get_help_option(self, ctx: Any) -> Any:
        return _bare_help_flag(super().get_help_option(ctx))
