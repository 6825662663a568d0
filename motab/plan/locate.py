"""Where a config key was written: `studies.toy.eval.n: expected integer` becomes
`studies/toy.yaml:97: studies.toy.eval.n: expected integer`, so a finding names file, line and key.

The config is merged from several files (config.yaml, studies/<study>.yaml, --configfile overrides),
so the key is looked up where it last came from: an override file that sets it, else the study's
file for `studies.<study>...` keys, else config.yaml. A key the expansion made (a sweep's run) names
the line of its closest written ancestor (`runs:` for a sweep's run).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml

from motab.plan.compose import STUDIES_DIR

_KEY = re.compile(r"^([^\s:]+): ")  # a finding starts with its key path


@cache
def _tree(path: str):
    """The file's YAML node tree (None when it is missing or not YAML)."""
    try:
        return yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def _find(node, key: str) -> tuple[int | None, bool]:
    """(line of the deepest part of `key` written under `node`, whether all of it was found). Keys
    may hold dots (Qwen2-1.5B), so each step takes the mapping key that the path continues with."""
    line, rest = None, key
    while rest:
        if isinstance(node, yaml.SequenceNode) and (m := re.match(r"\[(\d+)\]\.?", rest)):
            index = int(m.group(1))
            if index >= len(node.value):
                return line, False
            node, rest = node.value[index], rest[m.end() :]
            line = node.start_mark.line + 1
            continue
        if not isinstance(node, yaml.MappingNode):
            return line, False
        match = next(
            (
                (k, v)
                for k, v in node.value
                if isinstance(k.value, str)
                and rest.startswith(k.value)
                and rest[len(k.value) : len(k.value) + 1] in ("", ".", "[")
            ),
            None,
        )
        if match is None:
            return line, False
        node, line = match[1], match[0].start_mark.line + 1
        rest = rest[len(match[0].value) :].removeprefix(".")
    return line, True


def locate(finding: str, root: str | Path = ".", overrides: tuple[str, ...] = ()) -> str:
    """The finding prefixed with `file:line: ` of its key (unchanged when no file holds any of it)."""
    match = _KEY.match(finding)
    if not match:
        return finding
    key = match.group(1)
    for override in reversed(overrides):
        line, whole = _find(_tree(str(override)), key)
        if whole:
            return f"{override}:{line}: {finding}"
    study = re.match(r"studies\.([^.\[]+)", key)
    name = f"{STUDIES_DIR}/{study.group(1)}.yaml" if study else "config.yaml"
    if not (Path(root) / name).is_file():
        name = "config.yaml"
    line, _ = _find(_tree(str(Path(root) / name)), key)
    return f"{name}:{line}: {finding}" if line else finding
