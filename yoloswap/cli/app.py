"""The ``yoloswap`` command: wires the command modules and turns errors into one clear line.

Commands import torch and friends inside their functions, so ``yoloswap --help`` stays instant.
"""

from __future__ import annotations

import os
import sys

import typer

from yoloswap.cli import compare_cmds, export_cmds, inspect_cmds, train_cmds

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
train_cmds.register(app)
app.command("export")(export_cmds.export)
app.command("benchmark")(export_cmds.benchmark)
app.command("compare")(compare_cmds.compare)



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
    """Run the CLI; ``Error: ...`` and a non-zero exit instead of a traceback (unless ``YOLOSWAP_DEBUG=1``)."""
    from yoloswap.errors import YoloswapError

    exits, aborts, usage = _cli_exceptions()
    debug = os.environ.get("YOLOSWAP_DEBUG", "") not in ("", "0")
    try:
        # Without standalone mode typer returns an Exit's code (Ctrl-C gives 130) instead of raising it.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            if code == 130:
                print("Interrupted.", file=sys.stderr)
            return code
    except exits as exc:
        if exc.exit_code == 130:
            print("Interrupted.", file=sys.stderr)
        return exc.exit_code
    except usage as exc:  # bad option, missing argument: typer/click print their own usage message
        exc.show()
        return exc.exit_code
    except aborts:
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
