"""Imports run down the layers. At the bottom, the data layer (motab/data: reading benchmark and
training files) reads none of the layers above it. Above it, the grading layer (motab/grading:
answer extraction and equivalence, the `grade` command) is shared by synthesis (which filters
trajectories by their answers) and evaluation (`eval-grade`); it reads neither of them, nor
training, and those two read each other's code only through grading."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ABOVE_DATA = ("grading", "evaluation", "synthesis", "training", "serving", "plan", "tables", "report", "losses")
ABOVE_GRADING = ("evaluation", "synthesis", "training", "serving", "plan", "tables", "report", "losses")


def package_imports(path: Path) -> set[str]:
    """The motab modules a file imports (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("motab.")}


def imports_into(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    """`file imports module` for each import from a file of motab/<layer> into a forbidden layer."""
    return sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / "motab" / layer).rglob("*.py"))
        for name in package_imports(path)
        if name.split(".")[1] in forbidden
    )


def _layer_imports(layer: str) -> set[str]:
    """Every motab module the files of motab/<layer> import."""
    return {name for path in (REPO / "motab" / layer).rglob("*.py") for name in package_imports(path)}


def test_the_data_layer_imports_no_layer_above_it():
    assert imports_into("data", ABOVE_DATA) == []


def test_the_grading_layer_imports_no_layer_above_it():
    assert imports_into("grading", ABOVE_GRADING) == []


def test_synthesis_and_evaluation_share_grading_not_each_other():
    assert imports_into("synthesis", ("evaluation",)) + imports_into("evaluation", ("synthesis",)) == []
    assert any(name.startswith("motab.grading.") for name in _layer_imports("synthesis"))
    assert any(name.startswith("motab.grading.") for name in _layer_imports("evaluation"))


def test_the_layer_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a grading file that imports evaluation is reported."""
    (tmp_path / "motab" / "grading").mkdir(parents=True)
    (tmp_path / "motab" / "grading" / "bad.py").write_text("def f():\n    from motab.evaluation import metrics\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    assert imports_into("grading", ABOVE_GRADING) == ["motab/grading/bad.py imports motab.evaluation"]
