# The input functions and parameters of rules/kd.smk (Snakemake's lint: functions apart from rules).
import shlex
from motab.plan import SELF


def kd_cfg(wildcards):
    return STUDIES[wildcards.study].kd_cfg(wildcards.run)


def kd_run_sources(wildcards):
    """(teacher, prompt dataset, prompts per step or None) of each teacher of the run."""
    return STUDIES[wildcards.study].kd_sources(wildcards.run)


def teacher_location(study, teacher):
    """A teacher's folder or hub id, or "self" (self-distillation from the starting weights)."""
    return STUDIES[study].teacher_location(teacher)


def kd_prompt_files(wildcards):
    return [f"results/{wildcards.study}/kd_data/{dataset}.jsonl" for _, dataset, _ in kd_run_sources(wildcards)]


def kd_teacher_inputs(wildcards):
    """The teachers' pipeline-built folders (toy models) or hub downloads, each once."""
    names = {teacher for teacher, _, _ in kd_run_sources(wildcards)}
    return [path for t in sorted(names) if t != SELF for path in model_inputs(wildcards.study, t)]


def kd_launcher(wildcards):
    """Several nodes: one `motab kd-train` per node, each relaunching itself on its GPUs with accelerate."""
    nodes = study_cfg(wildcards.study)["resources"].get("kd", {}).get("nodes", 1)
    return f"srun --nodes={nodes} --ntasks-per-node=1 " if nodes > 1 else ""


def kd_tracking_args(wildcards, cfg):
    """The study's `tracking:` for this run: KDFlow's wandb flags (in its pass-through block) or
    kd-train's --tracking flags; (cfg, extra kd-train flags)."""
    tracking = study_cfg(wildcards.study).get("tracking")
    if not tracking:
        return cfg, ""
    if cfg["engine"] == "kdflow":
        options = plan.kdflow_options(tracking, wildcards.run, f"studies.{wildcards.study}.tracking")
        return cfg | {"kdflow": options | cfg.get("kdflow", {})}, ""
    project = f" --tracking-project {shlex.quote(tracking['project'])}" if tracking.get("project") else ""
    return cfg, (
        f" --tracking {tracking['backend']}"
        f" --tracking-dir logs/{wildcards.study}/kd/{wildcards.run}.tracking{project}"
    )


def kd_command(wildcards):
    """kd-train (the kd block as --config-json) or kdflow (as --params-json), with the run's locations."""
    cfg, tracking = kd_tracking_args(wildcards, kd_cfg(wildcards))
    sources = " ".join(
        f"--teacher {shlex.quote(teacher_location(wildcards.study, teacher))}"
        f" --prompts results/{wildcards.study}/kd_data/{dataset}.jsonl"
        + ("" if per_step is None else f" --prompts-per-step {per_step}")
        for teacher, dataset, per_step in kd_run_sources(wildcards)
    )
    common = (
        f"--student {shlex.quote(start_location(wildcards.study, wildcards.run))} {sources}"
        f" --output results/{wildcards.study}/ckpt/kd/{wildcards.run}"
    )
    if cfg["engine"] == "kdflow":
        return f"motab kdflow {common} --params-json {shlex.quote(as_json(cfg))}"
    return (
        # no --threads: the job's own CPUs decide them at run time (SLURM_CPUS_PER_TASK, motab.jobenv)
        f"{kd_launcher(wildcards)}motab kd-train {common}"
        f" --config-json {shlex.quote(as_json(cfg))}{tracking}{kd_teacher_server_args(wildcards, cfg)}"
    )


def kd_teacher_server_args(wildcards, cfg):
    """teacher_server: the teacher's server command and the job's GPUs of it and of the trainers."""
    if not cfg.get("teacher_server"):
        return ""
    (teacher,) = {t for t, _, _ in kd_run_sources(wildcards)}
    log = f"logs/{wildcards.study}/kd/{wildcards.run}.teacher.server.log"
    flags = plan.kd_teacher_server_args(STUDIES[wildcards.study], wildcards.run, teacher, log)
    return f" {flags}"
