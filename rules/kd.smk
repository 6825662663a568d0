# On-policy distillation from a trained (or base) student: the built-in trainer (`motab kd-train`,
# every config key is its --flag) or, with `engine: kdflow`, KDFlow on the cluster (`motab kdflow`
# writes KDFlow's command line into the checkpoint folder and starts Ray on the allocation).
# Both write the finished HF checkpoint (with training_log.csv for the built-in trainer) atomically.
import shlex

from motab.training.kd_config import config_argv


def kd_cfg(wildcards):
    spec = run_cfg(wildcards.study, wildcards.run)
    return study_cfg(wildcards.study)["kd"][spec["kd"]]


def kd_teacher(wildcards):
    """The teacher's config name, or "self" (self-distillation from the starting weights)."""
    return run_cfg(wildcards.study, wildcards.run).get("teacher", study_cfg(wildcards.study)["teacher"])


def kd_teacher_location(wildcards):
    teacher = kd_teacher(wildcards)
    return teacher if teacher == "self" else model_location(wildcards.study, teacher)


def kd_command(wildcards, threads):
    cfg = kd_cfg(wildcards)
    common = (f"--student {shlex.quote(start_location(wildcards.study, wildcards.run))}"
              f" --teacher {shlex.quote(kd_teacher_location(wildcards))}"
              f" --prompts results/{wildcards.study}/kd_data/prompts.jsonl"
              f" --output results/{wildcards.study}/ckpt/kd/{wildcards.run} --params-json {shlex.quote(as_json(cfg))}")
    if cfg["engine"] == "kdflow":
        return f"{MOTAB} kdflow {common}"
    return f"{MOTAB} kd-train {common} --threads {threads} {shlex.join(config_argv(cfg))}"


rule kd:
    conda:
        "../envs/kd.yaml"
    input:
        prompts="results/{study}/kd_data/prompts.jsonl",
        start=lambda wc: start_inputs(wc.study, wc.run),
        teacher=lambda wc: (
            [model_location(wc.study, kd_teacher(wc))]
            if kd_teacher(wc) != "self" and is_toy_model(kd_teacher(wc))
            else []
        ),
        code=code_inputs("kd-train", "kdflow"),
    output:
        directory("results/{study}/ckpt/kd/{run}"),
    params:
        kd=lambda wc: as_json(kd_cfg(wc)),
        start=lambda wc: start_location(wc.study, wc.run),
        teacher=kd_teacher_location,
        command=lambda wc, threads: kd_command(wc, threads),
    log:
        "logs/{study}/kd/{run}.log",
    benchmark:
        "logs/{study}/kd/{run}.benchmark.tsv"
    threads: 2
    resources:
        **stage_resources("kd"),
        nodes=lambda wc: study_cfg(wc.study)["resources"].get("kd", {}).get("nodes", 1),
    shell:
        "{params.command} > {log} 2>&1"
