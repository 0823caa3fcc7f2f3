"""Imports run one way, room by room, and no module imports itself round a circle:

cli → reports / train → evaluation → deploy → assembly → backbones (→ models' nn.Modules) → config / data →
ops / errors.

Lower rooms never reach up, not even inside a function: the preset schema knows nothing of the backbone sources,
the backbones read weights through the leaf safe loader, evaluation and deployment never import training, the
epoch hooks never import the loop, and only ``assembly.py`` puts a detector together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "yoloswap"
ABOVE_ASSEMBLY = ("yoloswap.training", "yoloswap.evaluation", "yoloswap.deploy", "yoloswap.reports", "yoloswap.cli")
DETECTOR_PARTS = ("yoloswap.models.detector", "yoloswap.models.neck", "yoloswap.models.head",
                  "yoloswap.models.yolov8_head")

# module (file or folder under yoloswap/) → packages it must never import
FORBIDDEN = {
    "config": ("yoloswap.backbones", "yoloswap.models", "yoloswap.assembly", *ABOVE_ASSEMBLY),
    "backbones": ("yoloswap.assembly", *ABOVE_ASSEMBLY),
    # models/ holds nn.Modules only: assembly (probe → neck/head) sits above it, so backbones may use its blocks
    "models": ("yoloswap.backbones", "yoloswap.config", "yoloswap.assembly", *ABOVE_ASSEMBLY),
    "data": ("yoloswap.models", "yoloswap.backbones", "yoloswap.assembly", "yoloswap.config", *ABOVE_ASSEMBLY),
    "data/formats/common.py": ("yoloswap.data.formats",),  # the format modules import it, never the reverse
    "assembly.py": ABOVE_ASSEMBLY,
    "deploy": ("yoloswap.training", "yoloswap.evaluation", "yoloswap.reports", "yoloswap.cli"),
    "evaluation": ("yoloswap.training", "yoloswap.reports", "yoloswap.cli"),
    "reports": ("yoloswap.training", "yoloswap.cli"),  # compare is handed the training function
    "training": ("yoloswap.cli",),
    "training/hooks.py": ("yoloswap.training.loop",),  # hooks read the run's state, never the loop
    "safeload.py": ("yoloswap.backbones", "yoloswap.config", "yoloswap.models", "yoloswap.checkpoint", *ABOVE_ASSEMBLY),
    "foreign_pickle.py": ("yoloswap.backbones", "yoloswap.config", "yoloswap.models", "yoloswap.checkpoint",
                          "yoloswap.assembly", *ABOVE_ASSEMBLY),
    "foreign_detector.py": ABOVE_ASSEMBLY,
    "checkpoint.py": ("yoloswap.backbones", "yoloswap.config", "yoloswap.models", "yoloswap.assembly", *ABOVE_ASSEMBLY),
    "home.py": ("yoloswap.",),
    "device.py": ("yoloswap.backbones", "yoloswap.models", "yoloswap.assembly", *ABOVE_ASSEMBLY),
    "run_folders.py": ("yoloswap.backbones", "yoloswap.models", "yoloswap.assembly", *ABOVE_ASSEMBLY),
}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (inside functions too); relative imports are not used."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]  # `from yoloswap.training import loop`
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files(where: str) -> list[Path]:
    target = PACKAGE / where
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize("where", sorted(FORBIDDEN))
def test_lower_rooms_do_not_import_upper_ones(where):
    assert _files(where), f"{where} is gone: update the rules"
    bad = [f"{f.relative_to(PACKAGE)} imports {m}" for f in _files(where) for m in _imports(f)
           if m.startswith(FORBIDDEN[where])]
    assert bad == []


def test_no_module_imports_itself_round_a_circle():
    modules = {_module(f): f for f in PACKAGE.rglob("*.py")}
    graph = {name: sorted({m for m in _imports(f) if m in modules and m != name}) for name, f in modules.items()}
    for name in list(graph):  # importing a.b runs a/__init__ first: not an edge worth a cycle of its own
        graph[name] = [m for m in graph[name] if not name.startswith(m + ".")]
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" → ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail else f"{node} → {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []


def test_only_assembly_puts_a_detector_together():
    bad = [f"{f.relative_to(PACKAGE)} imports {m}" for f in PACKAGE.rglob("*.py")
           if f.parent.name != "models" and f.name != "assembly.py"
           for m in _imports(f) if m.startswith(DETECTOR_PARTS)]
    assert bad == []


def test_the_rules_are_not_empty():
    """A rule that matches no import anywhere would pass vacuously; each room's forbidden list names real rooms."""
    rooms = {_module(f) for f in PACKAGE.rglob("*.py")}
    for where, banned in FORBIDDEN.items():
        for prefix in banned:
            assert any(r == prefix.rstrip(".") or r.startswith(prefix) for r in rooms), (where, prefix)


def test_one_cache_home_honours_xdg(monkeypatch, tmp_path):
    from yoloswap.home import yoloswap_home

    monkeypatch.delenv("YOLOSWAP_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert yoloswap_home() == tmp_path / "yoloswap"
    monkeypatch.setenv("YOLOSWAP_HOME", str(tmp_path / "mine"))
    assert yoloswap_home() == tmp_path / "mine"
