# Problems in the pipeline's contract (problems.jsonl), benchmarks, and KDFlow prompts. The study's
# train_data is prepared to results/{study}/data/problems.jsonl; any other dataset (KD prompts from
# their own dataset) to results/{study}/data/{dataset}/problems.jsonl, by the same command.


PREPARE = "motab prepare --input {params.raw:q} --source {params.source}{params.format} --output {output} > {log} 2>&1"


rule prepare:
    input:
        raw=raw_train_input,
        code=code_inputs("prepare"),
    output:
        "results/{study}/data/problems.jsonl",
    log:
        "logs/{study}/prepare.log",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    params:
        raw=raw_train_location,
        source=lambda wc: study_cfg(wc.study)["train_data"],
        format=lambda wc: format_args(study_cfg(wc.study)["train_data"]),
    shell:
        PREPARE


rule prepare_dataset:
    input:
        raw=lambda wc: raw_input(wc.study, wc.dataset),
        code=code_inputs("prepare"),
    output:
        "results/{study}/data/{dataset}/problems.jsonl",
    log:
        "logs/{study}/prepare/{dataset}.log",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    params:
        raw=lambda wc: raw_location(wc.study, wc.dataset),
        source=lambda wc: wc.dataset,
        format=lambda wc: format_args(wc.dataset),
    shell:
        PREPARE


rule benchmark:
    input:
        raw=bench_input,
        code=code_inputs("benchmark"),
    output:
        "results/{study}/benchmarks/{bench}.jsonl",
    log:
        "logs/{study}/benchmark/{bench}.log",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    params:
        bench=lambda wc: as_json(bench_cfg(wc)),
        location=lambda wc: bench_location(wc),
        format=lambda wc: bench_cfg(wc).get("format", "generic"),
        expected=lambda wc: bench_cfg(wc).get("count", 0),
        split=lambda wc: bench_cfg(wc).get("split", "test"),
        question=lambda wc: bench_cfg(wc).get("question_field", "question"),
        answer=lambda wc: bench_cfg(wc).get("answer_field", "answer"),
        limit=lambda wc: bench_cfg(wc).get("limit", 0),
        revision=bench_revision,
    shell:
        "motab benchmark --input {params.location:q} --format {params.format:q} --name {wildcards.bench}"
        " --output {output} --count {params.expected} --limit {params.limit} --split {params.split:q}"
        " --question-field {params.question:q} --answer-field {params.answer:q}{params.revision} > {log} 2>&1"


rule kd_prompts:
    input:
        problems=lambda wc: dataset_problems(wc.study, wc.dataset),
        code=code_inputs("kd-prompts"),
    output:
        "results/{study}/kd_data/{dataset}.jsonl",
    log:
        "logs/{study}/kd_prompts/{dataset}.log",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "motab kd-prompts --problems {input.problems} --output {output} --deduplicate > {log} 2>&1"


rule reorganize:
    input:
        rows="results/{study}/synth/{method}.jsonl",
        code=code_inputs("reorganize"),
    output:
        data="results/{study}/sft_data/{method}/train.jsonl",
        info="results/{study}/sft_data/{method}/dataset_info.json",
    log:
        "logs/{study}/reorganize/{method}.log",
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "motab reorganize --input {input.rows} --output-dir results/{wildcards.study}/sft_data/{wildcards.method}"
        " --dataset-name {wildcards.method} > {log} 2>&1"


rule train_data_sft:
    input:
        problems="results/{study}/data/problems.jsonl",
        code=code_inputs("reorganize"),
    output:
        data=f"results/{{study}}/sft_data/{TRAIN_DATA_SFT}/train.jsonl",
        info=f"results/{{study}}/sft_data/{TRAIN_DATA_SFT}/dataset_info.json",
    log:
        f"logs/{{study}}/reorganize/{TRAIN_DATA_SFT}.log",
    # SFT on the train set's own reference solutions (a run whose `sft` names the study's train_data)
    conda:
        "../envs/synth.yaml"
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "motab reorganize --problems {input.problems} --output-dir results/{wildcards.study}/sft_data/"
        + TRAIN_DATA_SFT
        + " --dataset-name "
        + TRAIN_DATA_SFT
        + " > {log} 2>&1"
