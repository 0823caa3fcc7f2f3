"""The handbook cannot drift from the code: README's set-up commands stay as CI runs them, every link resolves,
every ``yoloswap`` command shown names a real command and real options, and the examples run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAIN_JOB = ("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/yoloswap train --backbone convnext-tiny "
            "--head yolov8 --weights none")
TESTS = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest -q'
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def _commands(page: Path) -> list[str]:
    """Every ``yoloswap ...`` command in a page's code blocks, continuation lines joined, comments dropped."""
    found = []
    for block in FENCE.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"^(\$ )?([A-Z_]+=\S* )*", "", line.split(" #")[0].strip())  # a prompt, env settings
            at = line.find("yoloswap ")
            launcher = line.startswith((".venv/bin/yoloswap ", "torchrun ", "python -m ")) and "yoloswap " in line
            if at < 0 or not (at == 0 or launcher):  # output lines and prose that mention yoloswap are not commands
                continue
            found.append(line[at:])
    return found


def _options_of() -> dict[str, set[str]]:
    """Each command's option names, read from the click command typer builds (the same object --help renders)."""
    import typer

    from yoloswap.cli.app import app

    group = typer.main.get_command(app)
    return {name: {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} for name, cmd in group.commands.items()}


def test_readme_keeps_the_two_set_up_commands_ci_relies_on():
    text = (ROOT / "README.md").read_text()
    assert MAIN_JOB in text and TESTS in text
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()
    assert len(text.splitlines()) <= 200  # a newcomer's five minutes; the depth lives in docs/


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page):
    missing = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert missing == []


def test_every_command_shown_names_a_real_command_and_real_options():
    options = _options_of()
    wrong = []
    for page in PAGES:
        for command in _commands(page):
            words = shlex.split(command.replace("...", ""), comments=True)
            if len(words) < 2 or words[1].startswith("-"):
                continue
            sub = words[1]
            if sub not in options:
                wrong.append(f"{page.name}: {command} (no command {sub!r})")
                continue
            for word in words[2:]:
                name = word.split("=")[0]
                if name.startswith("-") and name not in options[sub] | {"-h", "--help"}:
                    wrong.append(f"{page.name}: {command} ({name} is not an option of {sub})")
    assert wrong == []
    assert sum(len(_commands(p)) for p in PAGES) > 50  # the parser still finds the commands


def test_the_own_loop_example_trains_a_built_detector():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "own_loop.py"), "--backbone", "yolov5n",
                          "--steps", "3", "--img-size", "64"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step 2: loss" in out.stdout and "decoded rows: (2, " in out.stdout


@pytest.mark.slow
def test_the_compare_and_count_examples_run_on_tiny_data(tmp_path):
    from tests.make_data import ultralytics_set

    data = ultralytics_set(tmp_path / "ds", names_as_dict=False)
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "compare_backbones.py"), "--data", str(data),
                          "--backbones", "yolov5n,yolov5n", "--epochs", "1", "--img-size", "64",
                          "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "best: yolov5n" in run.stdout
    count = subprocess.run([sys.executable, str(ROOT / "examples" / "count_objects.py"), "--weights",
                            str(tmp_path / "cmp" / "yolov5n" / "weights" / "best.pt"), "--source",
                            str(data.parent / "images" / "val"), "--conf", "0.01"],
                           capture_output=True, text=True, timeout=300)
    assert count.returncode == 0, count.stderr[-2000:]
    assert count.stdout.startswith("3 frames")
