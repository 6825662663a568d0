"""Config checks run by rules/common.smk at start-up, before any job is planned.

Each finding is one line naming the config key and what was expected:
- `schema_errors` (motab.schema_errors): the JSON schema's findings, one line each
  (`studies.toy.eval.n: expected integer, found 'zero'`) instead of Snakemake's dump of the failing
  sub-schema;
- `reference_errors`: names that must exist elsewhere in the config (`studies.motab.runs.sft_skd.sft:
  no synth method 'skdd'; known: ...`), which would otherwise surface as a KeyError inside an input
  function while the DAG is built;
- `local_path_errors`: paths of the selected studies' models, datasets and benchmarks that look local
  (`/data/x.jsonl`, `./models/x`) but do not exist, which would otherwise be taken for hub ids and
  fail mid-run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from motab.schema_errors import schema_errors

SELF = "self"  # a teacher that is the starting student itself (self-distillation with privileged context)

FILTERED = ".filtered"  # an sft source may name a synthesis method's filtered file
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".jsonl.gz", ".json.gz", ".arrow")


# ----------------------------------------------------------------------------- references


def _unknown(where: str, kind: str, name: Any, known: Iterable[str]) -> str:
    return f"{where}: no {kind} {name!r}; known: {', '.join(sorted(map(str, known))) or '(none)'}"


def reference_errors(config: dict) -> list[str]:
    """Names that must exist: studies, servers, models, datasets, benchmarks, runs, synth methods, kd
    blocks (kd teachers' names: motab.training.kd.blocks.kd_config_errors)."""
    errors: list[str] = []
    studies, models = config.get("studies", {}), config.get("models", {})
    datasets, benchmarks, servers = config.get("datasets", {}), config.get("benchmarks", {}), config.get("servers", {})
    for i, name in enumerate(config.get("select", [])):
        if name not in studies:
            errors.append(_unknown(f"select[{i}]", "study", name, studies))
    for name, bench in benchmarks.items():
        if "dataset" in bench and bench["dataset"] not in datasets:
            errors.append(_unknown(f"benchmarks.{name}.dataset", "dataset", bench["dataset"], datasets))
    for study_name, study in studies.items():
        where = f"studies.{study_name}"
        if "server" in study and study["server"] not in servers:
            errors.append(_unknown(f"{where}.server", "server", study["server"], servers))
        if "teacher" in study and study["teacher"] not in models and study["teacher"] != SELF:
            errors.append(_unknown(f"{where}.teacher", "model", study["teacher"], [*models, SELF]))
        if "student" in study and study["student"] not in models:
            errors.append(_unknown(f"{where}.student", "model", study["student"], models))
        if "train_data" in study and study["train_data"] not in datasets:
            errors.append(_unknown(f"{where}.train_data", "dataset", study["train_data"], datasets))
        runs, synth, kd = study.get("runs", {}), study.get("synth", {}), study.get("kd", {})
        for run_name, run in runs.items():
            at = f"{where}.runs.{run_name}"
            if "model" in run and run["model"] not in models:
                errors.append(_unknown(f"{at}.model", "model", run["model"], models))
            if "sft" in run and run["sft"].removesuffix(FILTERED) not in synth and run["sft"] not in datasets:
                known = [
                    *synth,
                    *(m + FILTERED for m in synth),
                    *([study["train_data"]] if "train_data" in study else []),
                ]
                errors.append(_unknown(f"{at}.sft", "synth method", run["sft"], known))
            if "kd" in run and run["kd"] not in kd:
                errors.append(_unknown(f"{at}.kd", "kd block", run["kd"], kd))
            if "from" in run and run["from"] not in runs and run["from"] not in models:
                errors.append(_unknown(f"{at}.from", "run or model", run["from"], [*runs, *models]))
            if "teacher" in run and run["teacher"] not in models and run["teacher"] != SELF:
                errors.append(_unknown(f"{at}.teacher", "model", run["teacher"], [*models, SELF]))
        evaluation = study.get("eval", {})
        for i, bench in enumerate(evaluation.get("benchmarks", [])):
            if bench not in benchmarks:
                errors.append(_unknown(f"{where}.eval.benchmarks[{i}]", "benchmark", bench, benchmarks))
        critic = evaluation.get("critic") or {}
        if "model" in critic and critic["model"] not in models:
            errors.append(_unknown(f"{where}.eval.critic.model", "model", critic["model"], models))
        for table_name, table in study.get("tables", {}).items():
            for i, row in enumerate(table.get("rows", [])):
                if row not in runs:
                    errors.append(_unknown(f"{where}.tables.{table_name}.rows[{i}]", "run", row, runs))
    return errors


# ----------------------------------------------------------------------------- local paths


def looks_local(location: str) -> bool:
    """A path rather than a hub id (`org/name`): absolute, ./ ../ ~, a data-file suffix, or 2+ slashes."""
    return (
        location.startswith(("/", "./", "../", "~", ".\\"))
        or location in (".", "..")
        or location.lower().endswith(DATA_SUFFIXES)
        or location.count("/") > 1
    )


def used_entries(config, studies: Iterable[str] | None = None) -> dict[str, set[str]]:
    """{section: names} of the models, datasets and benchmarks the studies use (default: `select`)."""
    models, datasets, benchmarks = set(), set(), set()
    for name in config.get("select", []) if studies is None else studies:
        study = config.get("studies", {}).get(name, {})
        models |= {study.get("teacher"), study.get("student")}
        datasets.add(study.get("train_data"))
        for run in study.get("runs", {}).values():
            models |= {run.get("model"), run.get("from"), run.get("teacher")}
        for block in study.get("kd", {}).values():
            datasets.add(block.get("prompts"))
            for teacher in block.get("teachers", []):
                models.add(teacher.get("model"))
                datasets.add(teacher.get("prompts"))
        evaluation = study.get("eval", {})
        benchmarks |= set(evaluation.get("benchmarks", []))
        models.add((evaluation.get("critic") or {}).get("model"))
    found = {"models": models, "datasets": datasets, "benchmarks": benchmarks}
    return {
        section: {n for n in names if isinstance(n, str) and n in config.get(section, {})}
        for section, names in found.items()
    }


def local_path_errors(config: dict, workdir: str | Path = ".") -> list[str]:
    """Paths of the selected studies that look local but do not exist (relative to `workdir`)."""
    errors = []
    for section, names in used_entries(config).items():
        for name in sorted(names):
            entry = config.get(section, {}).get(name)
            location = entry.get("path") if isinstance(entry, dict) and entry.get("source") != "toy" else None
            if not isinstance(location, str) or not looks_local(location):
                continue
            if not (Path(workdir) / Path(location).expanduser()).exists():
                errors.append(
                    f"{section}.{name}.path: {location!r} looks like a local path but does not exist "
                    f"(relative to {Path(workdir).resolve()}); point it at your copy, or use the hub id "
                    "(org/name) with a `revision` commit (docs/data.md)"
                )
    return errors


def startup_errors(config: dict, schema: dict, workdir: str | Path = ".") -> list[str]:
    """Everything above, schema first (references and paths only make sense in a valid config)."""
    return schema_errors(config, schema) or reference_errors(config) + local_path_errors(config, workdir)
