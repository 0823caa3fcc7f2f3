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


def test_every_command_is_checked():
    assert {name for name, _ in _commands()} >= {
        "list-backbones", "probe-channels", "info", "train", "val", "predict", "demo-data"}


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
