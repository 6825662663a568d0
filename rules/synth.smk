# Trajectory synthesis over HTTP: the rule's job starts the servers it needs and stops them.


def synth_cfg(wildcards):
    return study_cfg(wildcards.study)["synth"][wildcards.method]


rule synth:
    input:
        problems="results/{study}/data/problems.jsonl",
        teacher=lambda wc: [model_location(wc.study, study_cfg(wc.study)["teacher"])]
        if is_toy_model(study_cfg(wc.study)["teacher"])
        else [],
    output:
        "results/{study}/synth/{method}.jsonl",
    params:
        synth=lambda wc: as_json(synth_cfg(wc)),
        cfg=synth_cfg,
        teacher=lambda wc: model_location(wc.study, study_cfg(wc.study)["teacher"]),
        server=lambda wc: server_command(wc.study, study_cfg(wc.study)["teacher"]),
    log:
        "logs/{study}/synth/{method}.log",
    benchmark:
        "logs/{study}/synth/{method}.benchmark.tsv"
    threads: 1
    resources:
        **stage_resources("synth"),
    shell:
        "{MOTAB} synth --method {wildcards.method} --problems {input.problems} --teacher {params.teacher}"
        " --output {output} --params-json {params.synth:q} --server-command {params.server:q}"
        " --server-log logs/{wildcards.study}/synth/{wildcards.method}.server.log > {log} 2>&1"
