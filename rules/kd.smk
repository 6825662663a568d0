# On-policy distillation from a trained (or base) student: the built-in trainer (`motab kd-train`,
# handed the kd block as JSON: a KDConfig, written back as kd_config.json into the checkpoint) or,
# with `engine: kdflow`, KDFlow on the cluster (`motab kdflow` writes KDFlow's command line into the
# checkpoint folder, starts Ray on the allocation, and makes KDFlow's save_path/epoch_N the
# checkpoint; unset keys take run_onpolicy_kd*.sh's values).
# Both write the finished HF checkpoint (with training_log.csv for the built-in trainer) atomically.
# A SLURM job with several GPUs runs the built-in trainer on each (motab/training/kd/processes.py).
# The prompts: results/{study}/kd_data/{dataset}.jsonl of the kd block's `prompts` dataset (default
# the study's train_data); with `teachers`, one (teacher, prompts, prompts per step) triple each.
# teacher_server: kd-train starts the teacher's server on the first GPUs of the job and trains on the
# rest (motab.plan.servers.kd_teacher_server_args; docs/kd.md).


rule kd:
    input:
        prompts=kd_prompt_files,
        start=lambda wc: start_inputs(wc.study, wc.run),
        teacher=kd_teacher_inputs,
        code=code_inputs("kd-train", "kdflow"),
    output:
        directory("results/{study}/ckpt/kd/{run}"),
    log:
        "logs/{study}/kd/{run}.log",
    benchmark:
        "logs/{study}/kd/{run}.benchmark.tsv"
    conda:
        "../envs/kd.yaml"
    container:
        stage_container("kd")
    threads: stage_threads("kd")
    resources:
        **stage_resources("kd"),
        nodes=lambda wc: study_cfg(wc.study)["resources"].get("kd", {}).get("nodes", 1),
    params:
        kd=lambda wc: as_json(kd_cfg(wc)),
        start=lambda wc: start_location(wc.study, wc.run),
        teacher=lambda wc: as_json([teacher_location(wc.study, t) for t, _, _ in kd_run_sources(wc)]),
        command=kd_command,
    shell:
        # exec: the trainer is Snakemake's own child, so SLURM's SIGTERM reaches it with no shell between
        # that would die first (docs/resume.md)
        "exec {params.command} > {log} 2>&1"
