"""The ``yoloswap`` command: wires the command modules and turns errors into one clear line.

Commands import torch and friends inside their functions, so ``yoloswap --help`` stays instant.
"""

from __future__ import annotations

import os
import sys

import typer

from yoloswap.cli import inspect_cmds

app = typer.Typer(
    name="yoloswap",
    help="Put any image backbone under a YOLOv5 detector and train it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("list-backbones")(inspect_cmds.list_backbones)
app.command("probe-channels")(inspect_cmds.probe_channels)
app.command("info")(inspect_cmds.info)



def main(argv: list[str] | None = None) -> int:
    """Run the CLI; ``Error: ...`` and a non-zero exit instead of a traceback (unless ``YOLOSWAP_DEBUG=1``)."""
    import click

    from yoloswap.errors import YoloswapError

    debug = os.environ.get("YOLOSWAP_DEBUG", "") not in ("", "0")
    try:
        app(args=argv, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        print("Aborted.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except YoloswapError as exc:
        if debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say what happened in one line, traceback on request
        if debug:
            raise
        print(f"Error: {type(exc).__name__}: {exc} (set YOLOSWAP_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    sys.exit(main())
