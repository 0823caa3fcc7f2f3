"""Imports run one way: cli → engine → assembly → probe → backbones (→ models' nn.Modules) → presets/data →
ops/errors.

Lower layers never reach up, not even inside a function: the preset schema knows nothing of the backbone sources,
and the backbones read weights through the leaf safe loader, not the training engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "yoloswap"

# module (file or folder under yoloswap/) → packages it must never import
FORBIDDEN = {
    "presets.py": ("yoloswap.backbones", "yoloswap.probe", "yoloswap.models", "yoloswap.engine", "yoloswap.cli"),
    "backbones": ("yoloswap.probe", "yoloswap.engine", "yoloswap.cli", "yoloswap.assembly"),
    # models/ holds nn.Modules only: assembly (probe → neck/head) sits above it, so backbones may use its blocks
    "models": ("yoloswap.probe", "yoloswap.backbones", "yoloswap.presets", "yoloswap.engine", "yoloswap.cli",
               "yoloswap.assembly"),
    "probe.py": ("yoloswap.assembly", "yoloswap.engine", "yoloswap.cli"),
    "safeload.py": ("yoloswap.engine", "yoloswap.backbones", "yoloswap.presets", "yoloswap.models"),
    "home.py": ("yoloswap.",),
}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth, except inside a module ``__getattr__`` (a transitional alias)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
            for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(where):
    target = PACKAGE / where
    files = sorted(target.glob("*.py")) if target.is_dir() else [target]
    bad = [f"{f.name} imports {m}" for f in files for m in _imports(f) if m.startswith(FORBIDDEN[where])]
    assert bad == []


def test_one_cache_home_honours_xdg(monkeypatch, tmp_path):
    from yoloswap.home import yoloswap_home

    monkeypatch.delenv("YOLOSWAP_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert yoloswap_home() == tmp_path / "yoloswap"
    monkeypatch.setenv("YOLOSWAP_HOME", str(tmp_path / "mine"))
    assert yoloswap_home() == tmp_path / "mine"
