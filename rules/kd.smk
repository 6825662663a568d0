# On-policy distillation from a trained (or base) student: the built-in trainer (`motab kd-train`,
# handed the kd block as JSON: a KDConfig, written back as kd_config.json into the checkpoint) or,
# with `engine: kdflow`, KDFlow on the cluster (`motab kdflow` writes KDFlow's command line into the
# checkpoint folder, starts Ray on the allocation, and makes KDFlow's save_path/epoch_N the
# checkpoint; unset keys take run_onpolicy_kd*.sh's values).
# Both write the finished HF checkpoint (with training_log.csv for the built-in trainer) atomically.
# A SLURM job with several GPUs runs the built-in trainer on each (motab/training/processes.py).
# The prompts: results/{study}/kd_data/{dataset}.jsonl of the kd block's `prompts` dataset (default
# the study's train_data); with `teachers`, one (teacher, prompts, prompts per step) triple each.
import shlex

from motab.training.kd_config import SELF, kd_config_errors, kd_sources

if kd_config_errors(config):
    raise ValueError("config: " + "\n  ".join(kd_config_errors(config)))


def kd_cfg(wildcards):
    spec = run_cfg(wildcards.study, wildcards.run)
    return with_training_seed(wildcards.study, wildcards.run, study_cfg(wildcards.study)["kd"][spec["kd"]])


def kd_run_sources(wildcards):
    """(teacher, prompt dataset, prompts per step or None) of each teacher of the run."""
    return kd_sources(study_cfg(wildcards.study), run_cfg(wildcards.study, wildcards.run))


def teacher_location(study, teacher):
    """A teacher's folder or hub id, or "self" (self-distillation from the starting weights)."""
    return teacher if teacher == SELF else model_location(study, teacher)


def kd_prompt_files(wildcards):
    return [f"results/{wildcards.study}/kd_data/{dataset}.jsonl" for _, dataset, _ in kd_run_sources(wildcards)]


def kd_teacher_inputs(wildcards):
    """The pipeline-built teachers (toy models), each once."""
    names = {teacher for teacher, _, _ in kd_run_sources(wildcards)}
    return [model_location(wildcards.study, t) for t in sorted(names) if t != SELF and is_toy_model(t)]


def kd_launcher(wildcards):
    """Several nodes: one `motab kd-train` per node, each relaunching itself on its GPUs with accelerate."""
    nodes = study_cfg(wildcards.study)["resources"].get("kd", {}).get("nodes", 1)
    return f"srun --nodes={nodes} --ntasks-per-node=1 " if nodes > 1 else ""


def kd_tracking_args(wildcards, cfg):
    """The study's `tracking:` for this run: KDFlow's wandb flags (in its pass-through block) or
    kd-train's --tracking flags; (cfg, extra kd-train flags)."""
    from motab.tracking import kdflow_options

    tracking = study_cfg(wildcards.study).get("tracking")
    if not tracking:
        return cfg, ""
    if cfg["engine"] == "kdflow":
        options = kdflow_options(tracking, wildcards.run, f"studies.{wildcards.study}.tracking")
        return cfg | {"kdflow": options | cfg.get("kdflow", {})}, ""
    project = f" --tracking-project {shlex.quote(tracking['project'])}" if tracking.get("project") else ""
    return cfg, (f" --tracking {tracking['backend']}"
                 f" --tracking-dir logs/{wildcards.study}/kd/{wildcards.run}.tracking{project}")


def kd_command(wildcards, threads):
    """kd-train (the kd block as --config-json) or kdflow (as --params-json), with the run's locations."""
    cfg, tracking = kd_tracking_args(wildcards, kd_cfg(wildcards))
    sources = " ".join(
        f"--teacher {shlex.quote(teacher_location(wildcards.study, teacher))}"
        f" --prompts results/{wildcards.study}/kd_data/{dataset}.jsonl"
        + ("" if per_step is None else f" --prompts-per-step {per_step}")
        for teacher, dataset, per_step in kd_run_sources(wildcards)
    )
    common = (f"--student {shlex.quote(start_location(wildcards.study, wildcards.run))} {sources}"
              f" --output results/{wildcards.study}/ckpt/kd/{wildcards.run}")
    if cfg["engine"] == "kdflow":
        return f"{MOTAB} kdflow {common} --params-json {shlex.quote(as_json(cfg))}"
    return (f"{kd_launcher(wildcards)}{MOTAB} kd-train {common} --threads {threads}"
            f" --config-json {shlex.quote(as_json(cfg))}{tracking}")


rule kd:
    conda:
        "../envs/kd.yaml"
    container:
        stage_container("kd")
    input:
        prompts=kd_prompt_files,
        start=lambda wc: start_inputs(wc.study, wc.run),
        teacher=kd_teacher_inputs,
        code=code_inputs("kd-train", "kdflow"),
    output:
        directory("results/{study}/ckpt/kd/{run}"),
    params:
        kd=lambda wc: as_json(kd_cfg(wc)),
        start=lambda wc: start_location(wc.study, wc.run),
        teacher=lambda wc: as_json([teacher_location(wc.study, t) for t, _, _ in kd_run_sources(wc)]),
        command=lambda wc, threads: kd_command(wc, threads),
    log:
        "logs/{study}/kd/{run}.log",
    benchmark:
        "logs/{study}/kd/{run}.benchmark.tsv"
    threads: stage_threads("kd")
    resources:
        **stage_resources("kd"),
        nodes=lambda wc: study_cfg(wc.study)["resources"].get("kd", {}).get("nodes", 1),
    shell:
        "{params.command} > {log} 2>&1"
