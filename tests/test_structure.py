"""The package's shape: files with one job each, functions that read top to bottom.

Where a module or a function ends is a judgment (one concept per file, one step per function), not
a line count: a tight cap splits one concept into sibling fragments that a reader has to put back
together. So these checks are ceilings that only a real outlier reaches (a module that has grown
several jobs, a function that does several steps), well above what one concept needs here; a file
that reaches one should be split along its jobs, not trimmed to fit. Lines are counted as
`ruff format` lays the code out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "motab"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 100


def long_modules(package: Path, limit: int) -> dict[str, int]:
    """{module: lines} for the package's modules over `limit` lines."""
    return {
        str(p.relative_to(package)): n
        for p in sorted(package.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit
    }


def long_functions(package: Path, limit: int) -> dict[str, int]:
    """{module:line name: lines} for the package's functions (methods, nested ones) over `limit` lines."""
    long = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    long[f"{path.relative_to(package)}:{node.lineno} {node.name}"] = lines
    return long


def test_no_module_has_grown_several_jobs():
    long = long_modules(PACKAGE, MAX_FILE_LINES)
    assert not long, f"modules over {MAX_FILE_LINES} lines (split along their jobs): {long}"


def test_no_function_does_several_steps():
    long = long_functions(PACKAGE, MAX_FUNCTION_LINES)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split into named steps): {long}"


def test_the_ceilings_catch_an_outlier(tmp_path):
    """The checks can fail: a module and a function past the ceilings are named."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "big.py").write_text(f"def step():\n{body}\n" + "\n" * MAX_FILE_LINES)
    (tmp_path / "small.py").write_text("def f():\n    return 1\n")
    assert list(long_modules(tmp_path, MAX_FILE_LINES)) == ["big.py"]
    assert long_functions(tmp_path, MAX_FUNCTION_LINES) == {"big.py:1 step": MAX_FUNCTION_LINES + 1}
