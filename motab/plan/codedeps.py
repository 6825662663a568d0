"""Which source files of the package a `python -m motab <command>` runs: the command's module and
everything it imports from the package, found by reading the files (nothing is imported). A string
that is exactly a package module's dotted name counts as an import too: a registry naming the
modules it loads when asked (motab.synthesis.methods); the entry modules are not read for such
strings, since cli.py names every command's module and a command runs only its own.

The rules list these files as inputs, so editing motab/synthesis/skd.py reruns synthesis and what
follows from it, and nothing else. Standard library only.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

PACKAGE = "motab"
ENTRY_MODULES = ("motab", "motab.__main__", "motab.cli")  # what every `python -m motab X` runs
MODULE_NAME = re.compile(rf"^{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _module_file(root: Path, module: str) -> Path | None:
    """The file of a dotted module name under the package's parent folder `root`, if it exists."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, module: str) -> set[str]:
    """Package modules named by the import statements of one file (also those inside functions), and
    by its strings that are a module's whole dotted name (unless it is an entry module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and module not in ENTRY_MODULES:
            if MODULE_NAME.match(node.value):
                found.add(node.value)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _command_modules(root: Path) -> dict[str, str]:
    """{command: module} from the COMMANDS table in motab/cli.py."""
    tree = ast.parse((root / PACKAGE / "cli.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "COMMANDS":
            return {name: module for name, (module, _help) in ast.literal_eval(node.value).items()}
    raise ValueError(f"{root / PACKAGE / 'cli.py'}: no COMMANDS table found")


@cache
def module_files(root: str, *commands: str) -> tuple[str, ...]:
    """Sorted paths (relative to `root`, the folder holding the package) of every package file the
    commands run: entry point, command modules, their package imports, transitively, and the
    `__init__.py` of every package on the way."""
    base = Path(root)
    table = _command_modules(base)
    unknown = [c for c in commands if c not in table]
    if unknown:
        raise KeyError(f"unknown motab command(s) {unknown}; known: {sorted(table)}")
    pending = list(ENTRY_MODULES) + [table[c] for c in commands]
    seen: dict[str, Path] = {}
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        path = _module_file(base, module)
        if path is None:  # `from motab.x import name` where name is a function, not a module
            continue
        seen[module] = path
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        pending += parents + sorted(_imported_modules(path, module))
    return tuple(sorted(str(p.relative_to(base)) for p in seen.values()))
