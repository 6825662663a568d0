"""The inference servers a job starts: each model's launch command (the study's server with the
model's tensor- and data-parallel sizes filled in) and their GPU placement within the stage's GPUs."""

from __future__ import annotations

import shlex

from motab.passthrough import extend_command
from motab.plan.study import Study
from motab.serving.placement import PlacementError, ServerNeed, job_gpus, place, to_json


def server_parallel(study: Study, model: str, stage: str | None = None, role: str | None = None) -> dict:
    """tp and dp of a model's server: the model's (default 1), overridden for one stage's role by
    studies.<study>.resources.<stage>.servers.<role> (e.g. the synthesis student on 4 GPUs)."""
    base = study.models.get(model, {})
    over = study.cfg["resources"].get(stage, {}).get("servers", {}).get(role, {}) if stage else {}
    return {"tp": over.get("tp", base.get("tp", 1)), "dp": over.get("dp", base.get("dp", 1))}


def server_command(study: Study, model: str, stage: str | None = None, role: str | None = None) -> str:
    """The study's server launch command, with the model's tensor- and data-parallel sizes filled in."""
    name = study.cfg["server"]
    template = study.servers[name]
    if study.cfg.get("sglang"):  # the study's `sglang:` options, passed to launch_server unchanged
        if "sglang" not in template:
            raise ValueError(f"studies.{study.name}.sglang: the study's server {name!r} is not SGLang ({template})")
        template = extend_command(template, study.cfg["sglang"], f"studies.{study.name}.sglang")
    revision = study.model_revision(model)
    if revision and "sglang" in template:  # the hub model's pinned revision (models.<name>.revision)
        template = extend_command(template, {"revision": revision}, f"models.{model}.revision")
    parallel = server_parallel(study, model, stage, role)
    return template.replace("{tp}", str(parallel["tp"])).replace("{dp}", str(parallel["dp"]))


def stage_placement(study: Study, stage: str, servers: list[tuple[str, str]]) -> tuple[list, int]:
    """(placements, GPUs the job asks for) of a job of `stage` starting `servers` [(role, model)]:
    disjoint GPU blocks in order (or shared with share_gpus: true) within the stage's gpus. A job
    whose servers need more GPUs than that stops the plan (`snakemake -n`) with the config key."""
    resources = study.cfg["resources"]
    own = resources.get(stage, {})
    budget = own.get("gpus", resources["default"]["gpus"])
    where = f"studies.{study.name}.resources.{stage if 'gpus' in own else 'default'}.gpus"
    needs = [ServerNeed(role, model, **server_parallel(study, model, stage, role)) for role, model in servers]
    placements = place(needs, budget, own.get("share_gpus", False), where=where)
    return placements, (job_gpus(needs, own.get("share_gpus", False)) if budget else 0)


def placement_arg(study: Study, stage: str, servers: list[tuple[str, str]]) -> str:
    """`--placement JSON` for a job with GPUs; nothing on CPU (an empty value would swallow the next flag)."""
    placements, gpus = stage_placement(study, stage, servers)
    return f"--placement {shlex.quote(to_json(placements))}" if gpus else ""


def kd_teacher_server_args(study: Study, run: str, teacher: str, log: str) -> str:
    """kd-train's flags for a teacher_server run: the teacher's server command (its tp/dp: the model's,
    or resources.kd.servers.teacher) on the first GPUs of the job, the training processes on the rest."""
    where = f"studies.{study.name}.resources.kd.gpus"
    budget = study.resource("kd", "gpus")
    need = ServerNeed("teacher", teacher, **server_parallel(study, teacher, "kd", "teacher"))
    flags = f"--teacher-server-command {shlex.quote(server_command(study, teacher, 'kd', 'teacher'))}"
    flags += f" --teacher-server-log {shlex.quote(log)}"
    if not budget:  # a CPU job: the server and the trainer share the machine
        return flags
    trainers = budget - need.gpus
    if trainers < 1:
        raise PlacementError(
            f"{where}: {budget} GPUs leave none for training beside {teacher}'s server ({need.gpus}); "
            f"raise {where} or lower models.{teacher}.tp"
        )
    block = study.kd_cfg(run)
    per_step = [n or block.get("prompts_per_step") for _, _, n in study.kd_sources(run)]
    if any(n % trainers for n in per_step if n):
        raise PlacementError(
            f"studies.{study.name}.kd.{study.run(run).spec['kd']}.prompts_per_step: {per_step} prompts a step "
            f"do not split evenly over the {trainers} training GPUs beside {teacher}'s server ({need.gpus} of "
            f"{budget}); set studies.{study.name}.resources.kd.servers.teacher (tp, dp) or {where}"
        )
    placements = place([need, ServerNeed("trainer", "student", dp=trainers)], budget, where=where)
    return f"{flags} --placement {shlex.quote(to_json(placements))}"


def kd_server_errors(config: dict) -> list[str]:
    """One line per teacher_server KD run whose teacher's server and training processes do not share
    the kd stage's GPUs as they must (kd_teacher_server_args), for `snakemake -n`."""
    errors = []
    for name in config["studies"]:
        study = Study.of(config, name)
        for run in study.runs.values():
            cfg = study.kd_cfg(run.name) if run.kind == "kd" else {}
            if cfg.get("engine", "builtin") != "builtin" or not cfg.get("teacher_server"):
                continue
            try:
                kd_teacher_server_args(study, run.name, study.kd_sources(run.name)[0][0], "")
            except PlacementError as exc:
                errors.append(str(exc))
    return errors
