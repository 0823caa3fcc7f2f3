"""The ``yoloswap`` command: wires the command modules and turns errors into one clear line.

Commands import torch and friends inside their functions, so ``yoloswap --help`` stays instant.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from yoloswap import __version__
from yoloswap.cli import help as H
from yoloswap.cli import compare, data, deploy, evaluate, inspect, train
from yoloswap.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK

app = typer.Typer(
    name="yoloswap",
    cls=H.Group,
    help="Put any image backbone under a YOLOv5 detector and train it.",
    epilog="Exit codes: 0 done, 1 data or runtime failure, 2 wrong command line, 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Every command, one way: (name, function). Adding a command is one line here.
COMMANDS = (
    ("list-backbones", inspect.list_backbones),
    ("probe-channels", inspect.probe_channels),
    ("info", inspect.info),
    ("train", train.train),
    ("val", evaluate.val),
    ("predict", evaluate.predict),
    ("export", deploy.export),
    ("benchmark", deploy.benchmark),
    ("compare", compare.compare),
    ("demo-data", train.demo_data),
    ("check-data", data.check_data),
)
for _name, _command in COMMANDS:
    app.command(_name, cls=H.Command)(_command)


def _print_version(value: bool) -> None:
    if value:
        print(f"yoloswap {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, metavar="",
                                          help="Print the version and exit.")] = False,
) -> None:
    """Put any image backbone under a YOLOv5 detector and train it."""

def _cli_exceptions() -> tuple[tuple, tuple, tuple]:
    """(exit, abort, usage-error) classes of typer and of the click it uses (vendored in newer typer)."""
    exits, aborts, usage = [typer.Exit], [typer.Abort], []
    try:
        import click

        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
        usage.append(click.ClickException)
    except ImportError:
        pass
    try:
        from typer._click import exceptions as vendored

        usage.append(vendored.ClickException)
    except ImportError:
        pass
    return tuple(exits), tuple(aborts), tuple(usage)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; ``Error: ...`` and a non-zero exit instead of a traceback (unless ``YOLOSWAP_DEBUG=1``).

    The one place where exceptions become exit codes (convention in :mod:`yoloswap.errors`).
    """
    from yoloswap.errors import YoloswapError

    exits, aborts, usage = _cli_exceptions()
    debug = os.environ.get("YOLOSWAP_DEBUG", "") not in ("", "0")
    try:
        # Without standalone mode typer returns an Exit's code (Ctrl-C gives 130) instead of raising it.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            if code == EXIT_INTERRUPTED:
                print("Interrupted.", file=sys.stderr)
            return code
    except exits as exc:
        if exc.exit_code == EXIT_INTERRUPTED:
            print("Interrupted.", file=sys.stderr)
        return exc.exit_code
    except usage as exc:  # bad option, missing argument: typer/click print their own usage message
        exc.show()
        return exc.exit_code
    except aborts:
        print("Aborted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except YoloswapError as exc:
        if debug:
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say what happened in one line, traceback on request
        if debug:
            raise
        print(f"Error: {type(exc).__name__}: {exc} (set YOLOSWAP_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def run() -> None:
    sys.exit(main())
