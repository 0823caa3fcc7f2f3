"""Shared fixtures: a private cache folder per test session, and a CLI runner that captures both streams."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("YOLOSWAP_HOME", "")  # set per session below


@pytest.fixture(scope="session", autouse=True)
def _private_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("yoloswap-home")
    old = os.environ.get("YOLOSWAP_HOME")
    os.environ["YOLOSWAP_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    yield home
    if old is None:
        os.environ.pop("YOLOSWAP_HOME", None)
    else:
        os.environ["YOLOSWAP_HOME"] = old


@pytest.fixture
def cli(capsys):
    """Run ``yoloswap ARGS`` in-process; returns (exit_code, stdout, stderr)."""
    from yoloswap.cli.app import main

    def run(*args: str):
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
