# Trajectory synthesis over HTTP: the job starts the servers it needs (teacher, and the student
# for draft-and-verify methods) and always stops them. Then the teacher-CoT filter.


rule synth:
    input:
        problems="results/{study}/data/problems.jsonl",
        models=lambda wc: [path for m in synth_models(wc) for path in model_inputs(wc.study, m)],
        code=code_inputs("synth", "serve"),
    output:
        rows="results/{study}/synth/{method}.jsonl",
        stats="results/{study}/synth/{method}.stats.json",
    log:
        "logs/{study}/synth/{method}.log",
    benchmark:
        "logs/{study}/synth/{method}.benchmark.tsv"
    wildcard_constraints:
        method=r"[a-z0-9_]+",
    conda:
        "../envs/synth.yaml"
    container:
        stage_container("synth")
    threads: stage_threads("synth")
    resources:
        **stage_resources("synth", gpu=lambda wc: stage_placement(wc.study, "synth", synth_servers(wc))[1]),
        server_startup_s=server_startup("synth"),
    params:
        synth=lambda wc: as_json(synth_params(wc)),
        algorithm=lambda wc: plan.synth_algorithm(wc.method),
        teacher=lambda wc: model_location(wc.study, study_cfg(wc.study)["teacher"]),
        student=synth_student_args,
        server=lambda wc: server_command(wc.study, study_cfg(wc.study)["teacher"], "synth", "teacher"),
        placement=lambda wc: placement_arg(wc.study, "synth", synth_servers(wc)),
        max_in_flight=lambda wc: study_cfg(wc.study).get("max_in_flight", 8),
    shell:
        "motab synth --method {params.algorithm} --problems {input.problems} --teacher {params.teacher:q}"
        " {params.student} --output {output.rows} --stats {output.stats} --params-json {params.synth:q}"
        " --server-command {params.server:q} --server-startup-timeout {resources.server_startup_s} {params.placement} --max-in-flight {params.max_in_flight}"
        " --server-log logs/{wildcards.study}/synth/{wildcards.method}.server.log > {log} 2>&1"


rule synth_filter:
    input:
        rows="results/{study}/synth/{method}.jsonl",
        gold="results/{study}/data/problems.jsonl",
        code=code_inputs("synth-filter"),
    output:
        rows="results/{study}/synth/{method}.filtered.jsonl",
        stats="results/{study}/synth/{method}.filtered.stats.json",
        counts="results/{study}/synth/{method}.filter_counts.json",
    log:
        "logs/{study}/synth/{method}.filter.log",
    wildcard_constraints:
        method=r"[a-z0-9_]+",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    params:
        filter=lambda wc: as_json(study_cfg(wc.study)["filter"]),
        args=filter_args,
    shell:
        "motab synth-filter --input {input.rows} --gold {input.gold} --output {output.rows}"
        " --stats {output.stats} --counts {output.counts} {params.args} --params-json {params.filter:q} > {log} 2>&1"


rule data_card:
    input:
        rows="results/{study}/synth/{dataset}.jsonl",
        problems="results/{study}/data/problems.jsonl",
        tokenizer=card_tokenizer_inputs,
        code=code_inputs("data-card"),
    output:
        json="results/{study}/synth/{dataset}.card.json",
        md=report(
            "results/{study}/report/cards/{dataset}.md",
            caption="../report/data_card.rst",
            category="Data",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "data card: {dataset}"},
        ),
    log:
        "logs/{study}/synth/{dataset}.card.log",
    wildcard_constraints:
        dataset=r"[a-z0-9_]+(\.filtered)?",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    params:
        tokenizer=lambda wc: model_location(wc.study, card_student(wc)),
        budgets=card_budget_args,
    shell:
        "motab data-card --rows {input.rows} --problems {input.problems} --tokenizer {params.tokenizer:q}"
        " {params.budgets} --json {output.json} --md {output.md} > {log} 2>&1"
