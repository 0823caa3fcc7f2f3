"""Help that teaches, checked from the Typer app itself (not by eye): every option of every command says what
it does, sits in a named panel, and a boolean reads as a flag."""

from __future__ import annotations

import pytest
import typer
from typer.main import get_command

from yoloswap.cli import help as H
from yoloswap.cli.app import app

PANELS = {H.DATA, H.MODEL, H.OPTIMIZATION, H.AUGMENTATION, H.DETECTION, H.OUTPUT, H.HARDWARE}


def _commands():
    group = get_command(app)
    return sorted(group.commands.items())


def _options(command):
    return [p for p in command.params if p.param_type_name == "option"]


def test_every_command_is_registered_from_the_one_table_and_documented():
    from pathlib import Path

    from yoloswap.cli.app import COMMANDS

    names = [name for name, _ in COMMANDS]
    assert sorted(names) == [name for name, _ in _commands()]  # the checks below then cover every command
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert [n for n in names if f"yoloswap {n}" not in readme] == []


@pytest.mark.parametrize("command,conf,iou", [("val", "EVAL_CONF", "EVAL_IOU"), ("predict", "PREDICT_CONF", "PREDICT_IOU")])
def test_command_thresholds_are_the_ones_the_library_uses(command, conf, iou):
    """The CLI does not import torch (instant --help), so its defaults are written there; they must not drift."""
    from yoloswap import ops

    params = {p.name: p.default for p in get_command(app).commands[command].params}
    assert (params["conf"], params["iou"]) == (getattr(ops, conf), getattr(ops, iou))


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_every_option_has_help_text(name, command):
    missing = [p.opts[0] for p in _options(command) if not (p.help or "").strip()]
    assert missing == [], f"{name}: options without help: {missing}"


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_every_option_sits_in_a_named_panel(name, command):
    loose = [p.opts[0] for p in _options(command) if getattr(p, "rich_help_panel", None) not in PANELS]
    assert loose == [], f"{name}: options outside the panels {sorted(PANELS)}: {loose}"


@pytest.mark.parametrize("name,command", _commands(), ids=[n for n, _ in _commands()])
def test_booleans_are_flags_without_a_value_placeholder(name, command):
    ctx = typer.Context(command)
    wrong = [p.opts[0] for p in _options(command)
             if getattr(p, "is_bool_flag", False) and (p.display_type_rich(ctx) or "").strip()]
    assert wrong == [], f"{name}: flags shown as taking a value: {wrong}"


def test_help_renders_the_panels(cli):
    code, out, _ = cli("val", "--help")
    assert code == 0
    for panel in (H.MODEL, H.DATA, H.HARDWARE, H.DETECTION, H.OUTPUT):
        assert panel in out
    assert "<bool>" not in out  # --json and --help read as flags
