# On-policy distillation from a trained (or base) student, with the built-in trainer.


def kd_cfg(wildcards):
    spec = run_cfg(wildcards.study, wildcards.run)
    return study_cfg(wildcards.study)["kd"][spec["kd"]]


def kd_teacher(wildcards):
    return run_cfg(wildcards.study, wildcards.run).get("teacher", study_cfg(wildcards.study)["teacher"])


rule kd:
    input:
        prompts="results/{study}/kd_data/prompts.jsonl",
        start=lambda wc: start_inputs(wc.study, wc.run),
        teacher=lambda wc: [model_location(wc.study, kd_teacher(wc))] if is_toy_model(kd_teacher(wc)) else [],
        code=code_inputs("kd-train"),
    output:
        directory("results/{study}/ckpt/kd/{run}"),
    params:
        kd=lambda wc: as_json(kd_cfg(wc)),
        cfg=kd_cfg,
        start=lambda wc: start_location(wc.study, wc.run),
        teacher=lambda wc: model_location(wc.study, kd_teacher(wc)),
    log:
        "logs/{study}/kd/{run}.log",
    benchmark:
        "logs/{study}/kd/{run}.benchmark.tsv"
    threads: 2
    resources:
        **stage_resources("kd"),
    shell:
        "{MOTAB} kd-train --student {params.start} --teacher {params.teacher} --prompts {input.prompts}"
        " --output {output} --log-csv results/{wildcards.study}/train_logs/kd/{wildcards.run}.csv"
        " --loss {params.cfg[loss]} --steps {params.cfg[steps]} --prompts-per-step {params.cfg[prompts_per_step]}"
        " --samples-per-prompt {params.cfg[samples_per_prompt]} --max-new-tokens {params.cfg[max_new_tokens]}"
        " --temperature {params.cfg[temperature]} --lr {params.cfg[lr]} --seed {params.cfg[seed]}"
        " --threads {threads} --params-json {params.kd:q} > {log} 2>&1"
