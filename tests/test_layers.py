"""Imports run down the layers: the data layer (motab/data: reading benchmark and training files)
is read by evaluation, synthesis and training, and reads none of them."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ABOVE_DATA = ("evaluation", "synthesis", "training", "serving", "plan", "tables", "report", "losses")


def package_imports(path: Path) -> set[str]:
    """The motab modules a file imports (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("motab.")}


def test_the_data_layer_imports_no_layer_above_it():
    upward = {
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / "motab" / "data").glob("*.py"))
        for name in package_imports(path)
        if name.split(".")[1] in ABOVE_DATA
    }
    assert sorted(upward) == []
