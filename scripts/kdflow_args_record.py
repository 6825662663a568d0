"""Write tests/fixtures/kdflow_args.json: the command-line arguments KDFlow's own parser accepts.

KDFlow is not on the package registry and the tests cannot reach GitHub, so the tests check our
KDFlow command lines against this record, made once from the pinned commit's own code:

    python scripts/kdflow_args_record.py GIT_DIR [COMMIT] > tests/fixtures/kdflow_args.json

GIT_DIR is a clone of github.com/songmzhang/KDFlow. The script reads `init_args` in
kdflow/arguments/__init__.py at COMMIT with `ast` to find the dataclasses it hands to
transformers' HfArgumentParser (and in what order), executes those dataclass modules (they import
only the standard library), builds the same HfArgumentParser and records every argparse action:
flags, dest, type, choices, default, nargs, const, required and action.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types

COMMIT = "3a7a21addad68341291f1c24e02d231c5dae7cb0"
PACKAGE = "kdflow/arguments"


def git_show(git_dir: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def parser_classes(init_source: str) -> list[tuple[str, str]]:
    """(module, class) of each dataclass init_args passes to HfArgumentParser, in order."""
    tree = ast.parse(init_source)
    modules = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    init = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "init_args")
    call = next(
        n
        for n in ast.walk(init)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "HfArgumentParser"
    )
    return [(modules[elt.id], elt.id) for elt in call.args[0].elts]


def load_class(git_dir: str, commit: str, module: str, name: str) -> type:
    source = git_show(git_dir, commit, module.replace(".", "/") + ".py")
    mod = types.ModuleType(module)
    sys.modules[module] = mod  # dataclasses look their module up while building the class
    exec(compile(source, f"{module}.py", "exec"), mod.__dict__)
    return getattr(mod, name)


def jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def type_name(kind) -> str | None:
    if kind is None:
        return None
    return {str: "str", int: "int", float: "float"}.get(kind, getattr(kind, "__name__", repr(kind)))


def record(git_dir: str, commit: str) -> dict:
    import transformers
    from transformers import HfArgumentParser

    classes = [
        load_class(git_dir, commit, module, name)
        for module, name in parser_classes(git_show(git_dir, commit, f"{PACKAGE}/__init__.py"))
    ]
    parser = HfArgumentParser(classes)
    actions = [
        {
            "flags": action.option_strings,
            "dest": action.dest,
            "action": type(action).__name__,
            "type": type_name(action.type),
            "choices": jsonable(list(action.choices)) if action.choices is not None else None,
            "default": jsonable(action.default),
            "nargs": action.nargs,
            "const": jsonable(action.const),
            "required": action.required,
        }
        for action in parser._actions
        if action.dest != "help"
    ]
    return {
        "source": f"github.com/songmzhang/KDFlow@{commit} {PACKAGE}/__init__.py init_args",
        "made_by": "scripts/kdflow_args_record.py (HfArgumentParser over init_args' dataclasses)",
        "transformers": transformers.__version__,
        "dataclasses": [cls.__name__ for cls in classes],
        "actions": actions,
    }


if __name__ == "__main__":
    git_dir = sys.argv[1]
    commit = sys.argv[2] if len(sys.argv) > 2 else COMMIT
    print(json.dumps(record(git_dir, commit), indent=1))
