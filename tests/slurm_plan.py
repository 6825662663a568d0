"""The jobs of the paper studies' SLURM plan, as `snakemake --profile profiles/slurm all -n` plans them
(the profile's own `config:` selects the studies), with each job's full shell command and resources
(the profile's default-resources under the rule's own).
Built in-process once per test session (about 20 s)."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from functools import cache

import yaml
from dryrun import REPO, _dag

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"


@dataclass(frozen=True)
class PlanJob:
    rule: str
    wildcards: dict
    command: str
    resources: dict
    threads: int

    @property
    def name(self) -> str:
        return f"{self.rule} " + " ".join(f"{k}={v}" for k, v in sorted(self.wildcards.items()))


def _jobs(targets: tuple[str, ...], config: dict) -> tuple[PlanJob, ...]:
    defaults = yaml.safe_load(PROFILE.read_text()).get("default-resources", {})
    logging.disable(logging.INFO)
    try:
        jobs = _dag(REPO, [], targets=targets, config=yaml.safe_load(PROFILE.read_text())["config"] | config)
    finally:
        logging.disable(logging.NOTSET)
    return tuple(
        PlanJob(
            job.rule.name,
            dict(job.wildcards_dict),
            job.shellcmd or "",
            # the profile's default-resources under the rule's own (as Snakemake applies them)
            defaults | {k: v for k, v in job.resources.items() if not k.startswith("_")},
            job.threads,
        )
        for job in sorted(jobs, key=lambda j: (j.rule.name, sorted(j.wildcards_dict.items())))
    )


@cache
def paper_jobs() -> tuple[PlanJob, ...]:
    return _jobs(("all",), {})


@cache
def kdflow_recipe_jobs() -> tuple[PlanJob, ...]:
    """The kd job of every KDFlow recipe (engine kdflow) of the paper studies, each as a run from the
    study's first SFT run would plan it (most recipes are not used by a table row of `all`)."""
    from motab.plan import workflow_config

    config = workflow_config(REPO)
    selected = yaml.safe_load(PROFILE.read_text())["config"]["select"]
    runs, targets = {}, []
    for study in selected:
        cfg = config["studies"][study]
        start = next((name for name, run in cfg.get("runs", {}).items() if "sft" in run), None)
        for recipe, block in sorted(cfg.get("kd", {}).items()):
            if block.get("engine") == "kdflow" and start:
                runs.setdefault(study, {})[f"check_{recipe}"] = {"kd": recipe, "from": start, "label": recipe}
                targets.append(f"results/{study}/ckpt/kd/check_{recipe}")
    config = {"studies": {study: {"runs": extra} for study, extra in runs.items()}}
    return tuple(job for job in _jobs(tuple(targets), config) if job.rule == "kd")


def motab_argv(command: str, subcommand: str) -> list[str]:
    """The arguments of `motab <subcommand>` in a job's command (before its `> log` redirection)."""
    words = shlex.split(command)
    words = words[: words.index(">")] if ">" in words else words
    for i, word in enumerate(words):
        if word == subcommand and i and (words[i - 1].endswith("motab") or words[i - 2 : i] == ["-m", "motab"]):
            return words[i + 1 :]
    raise ValueError(f"no `motab {subcommand}` in {command[:200]}")


def jobs_running(subcommand: str, jobs: tuple[PlanJob, ...] | None = None) -> list[tuple[PlanJob, list[str]]]:
    out = []
    for job in paper_jobs() if jobs is None else jobs:
        try:
            out.append((job, motab_argv(job.command, subcommand)))
        except ValueError:
            continue
    return out
