"""The synthesis methods, each declared once: name -> where its code lives and whether a student drafts.

`motab synth` (run.py: --method's choices, which servers it starts) and the planner (motab.plan:
what an entry's name means, whether a job starts the student's server) read this table. It names
modules by string and imports none of them, so the planner stays free of the methods' code (and of
torch); `load` imports a method when it runs. motab.plan.codedeps counts a module named here as
imported by whoever imports this file, so editing a method's module still reruns its synthesis
jobs. tests/test_declared_once.py checks the table against the modules and against
schemas/config.schema.yaml.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """Where a method's code lives and how it is run."""

    module: str  # defines the params dataclass and `async synthesize_chunk(ctx, problems, prompts, params)`
    params: str  # the params dataclass: its fields are the keys of a study's `synth.<method>` entry
    drafts: bool  # a student drafts and the teacher verifies: the job also starts the student's server


METHODS: dict[str, Method] = {
    "teacher_only": Method("motab.synthesis.teacher_only", "TeacherOnlyParams", drafts=False),
    "motab": Method("motab.synthesis.motab_method", "MotabParams", drafts=True),
    "skd": Method("motab.synthesis.skd", "SkdParams", drafts=True),
    "skd_tokens": Method("motab.synthesis.skd_tokens", "SkdTokensParams", drafts=True),
}
DRAFTING = frozenset(name for name, method in METHODS.items() if method.drafts)


def algorithm_of(entry: str) -> str | None:
    """The method of a synth entry name (`skd`, `skd_7b`, `skd_gamma0p6` -> `skd`), or None: an entry
    is a method's name, optionally followed by `_<anything>` (a sweep's value, a second student)."""
    for name in sorted(METHODS, key=len, reverse=True):  # skd_tokens_x is skd_tokens, not skd
        if entry == name or entry.startswith(name + "_"):
            return name
    return None


def load(name: str) -> tuple[type, object]:
    """(params dataclass, synthesize_chunk) of a method, importing its module."""
    method = METHODS[name]
    module = importlib.import_module(method.module)
    return getattr(module, method.params), module.synthesize_chunk
