"""The package's rooms: code that runs in Spark, code that runs in Airflow, the tools, and the
shared core under them. Spark ships only the core and `retrain.spark`, so neither side may
import the other, and the core imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "include" / "retrain"
MAY_NOT_IMPORT = {
    "core": ("retrain.spark", "retrain.airflow", "retrain.tools"),
    "spark": ("retrain.airflow", "retrain.tools"),
    "airflow": ("retrain.spark", "retrain.tools"),
    "tools": (),
}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def room_of(path: Path) -> str:
    return path.parent.name if path.parent != PACKAGE else "core"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.stem)
def test_each_module_imports_only_what_its_room_may(path):
    forbidden = MAY_NOT_IMPORT[room_of(path)]
    wrong = sorted(name for name in imports_of(path) if name.startswith(forbidden))
    assert not wrong, f"{path.relative_to(PACKAGE)} imports {wrong}"


def test_every_module_has_a_room():
    rooms = {room_of(p) for p in PACKAGE.rglob("*.py")}
    assert rooms == set(MAY_NOT_IMPORT)
