"""kd blocks of config: their teachers and prompt sources, and their checks (torch-free: the Snakefile imports it)."""

from __future__ import annotations

from motab.training.kd.config import RULE_KEYS, SELF, ConfigError, KDConfig

__all__ = ["RULE_KEYS", "SELF", "block_errors", "kd_config_errors", "kd_sources"]


def block_errors(cfg: dict, where: str) -> list[str]:
    """A builtin kd block read as a KDConfig (types, ranges, loss names from the objective registry)."""
    if cfg.get("engine", "builtin") != "builtin":
        return []
    try:
        KDConfig.from_dict(cfg, where)
    except ConfigError as exc:
        return [str(exc)]
    return []


def kd_sources(study: dict, run: dict) -> list[tuple[str, str, int | None]]:
    """(teacher, prompt dataset, prompts per step) of each teacher of a KD run.

    A kd block with `teachers` (Tinker's multi-teacher form) lists them; otherwise the one teacher is
    the run's `teacher` (else the study's), its prompts the block's `prompts` dataset (else the study's
    train_data), and its prompts per step the block's own prompts_per_step (None here: the block's prompts_per_step, part of its KDConfig).
    """
    cfg = study["kd"][run["kd"]]
    if "teachers" in cfg:
        return [(t["model"], t["prompts"], t["prompts_per_step"]) for t in cfg["teachers"]]
    return [(run.get("teacher", study["teacher"]), cfg.get("prompts", study["train_data"]), None)]


def kd_config_errors(config: dict) -> list[str]:
    """What the schema cannot say about kd blocks and KD runs: names that must exist, keys that exclude each other."""
    errors = []
    datasets, models = config.get("datasets", {}), config.get("models", {})
    for study_name, study in config.get("studies", {}).items():
        for name, cfg in study.get("kd", {}).items():
            where = f"studies.{study_name}.kd.{name}"
            errors += block_errors(cfg, where)
            if "prompts" in cfg and cfg["prompts"] not in datasets:
                errors.append(f"{where}.prompts: {cfg['prompts']!r} is not a dataset (datasets: {sorted(datasets)})")
            if cfg.get("teacher_server") and len({t["model"] for t in cfg.get("teachers", [])}) > 1:
                errors.append(f"{where}.teacher_server: starts one teacher's server; these teachers are several")
            if "teachers" not in cfg:
                if cfg.get("engine") == "builtin" and "prompts_per_step" not in cfg:
                    errors.append(f"{where}: prompts_per_step is required (or teachers, each with its own)")
                continue
            if cfg.get("engine") != "builtin":
                errors.append(f"{where}.teachers: several teachers need engine builtin (KDFlow takes one teacher)")
            for key in ("prompts_per_step", "prompts"):
                if key in cfg:
                    errors.append(
                        f"{where}.{key}: not used with teachers (each teacher names its prompts and "
                        "prompts_per_step); remove it"
                    )
            for i, teacher in enumerate(cfg["teachers"]):
                if teacher["model"] != SELF and teacher["model"] not in models:
                    errors.append(
                        f"{where}.teachers[{i}].model: {teacher['model']!r} is not a model "
                        f"(models: {sorted(models)}, or 'self')"
                    )
                if teacher["prompts"] not in datasets:
                    errors.append(
                        f"{where}.teachers[{i}].prompts: {teacher['prompts']!r} is not a dataset "
                        f"(datasets: {sorted(datasets)})"
                    )
        for run_name, run in study.get("runs", {}).items():
            cfg = study.get("kd", {}).get(run.get("kd"), {})
            if cfg.get("teacher_server") and SELF in {run.get("teacher", study.get("teacher"))} | {
                t["model"] for t in cfg.get("teachers", [])
            }:
                errors.append(
                    f"studies.{study_name}.kd.{run['kd']}.teacher_server: run {run_name}'s teacher is self "
                    "(the student, scored in-process); use teacher_server false"
                )
            if "teachers" in cfg and "teacher" in run:
                errors.append(
                    f"studies.{study_name}.runs.{run_name}.teacher: kd {run['kd']!r} names its teachers "
                    "(teachers:); remove the run's teacher"
                )
    return errors
