# Problems in the pipeline's contract (problems.jsonl), benchmarks, and KDFlow prompts. The study's
# train_data is prepared to results/{study}/data/problems.jsonl; any other dataset (KD prompts from
# their own dataset) to results/{study}/data/{dataset}/problems.jsonl, by the same command.


def raw_input(study, dataset):
    """A dataset's raw file as a Snakemake input: generated for toy data, the local file, or none (a hub id)."""
    data = config["datasets"][dataset]
    if data["source"] == "toy":
        return raw_toy_location(study, dataset)
    return data["path"] if Path(data["path"]).is_file() else []


def raw_location(study, dataset):
    data = config["datasets"][dataset]
    return raw_toy_location(study, dataset) if data["source"] == "toy" else data["path"]


def raw_toy_location(study, dataset):
    if dataset == study_cfg(study)["train_data"]:
        return f"results/{study}/raw/train.jsonl"
    return f"results/{study}/raw/{dataset}/train.jsonl"


def dataset_problems(study, dataset):
    """problems.jsonl of a dataset: the train data's own path, or the dataset's folder."""
    if dataset == study_cfg(study)["train_data"]:
        return f"results/{study}/data/problems.jsonl"
    return f"results/{study}/data/{dataset}/problems.jsonl"


def raw_train_input(wildcards):
    return raw_input(wildcards.study, study_cfg(wildcards.study)["train_data"])


def raw_train_location(wildcards):
    return raw_location(wildcards.study, study_cfg(wildcards.study)["train_data"])


PREPARE = "{MOTAB} prepare --input {params.raw:q} --source {params.source}{params.format} --output {output} > {log} 2>&1"


def format_args(dataset):
    """--format/--split of a dataset in another release's fields (none for toy and LIMO files)."""
    data = config["datasets"][dataset]
    revision = f" --revision {shlex.quote(data['revision'])}" if data.get("revision") else ""
    if "format" not in data and "split" not in data:
        return revision
    return f" --format {shlex.quote(data.get('format', 'limo'))} --split {shlex.quote(data.get('split', 'train'))}{revision}"


rule prepare:
    conda:
        "../envs/synth.yaml"
    input:
        raw=raw_train_input,
        code=code_inputs("prepare"),
    output:
        "results/{study}/data/problems.jsonl",
    params:
        raw=raw_train_location,
        source=lambda wc: study_cfg(wc.study)["train_data"],
        format=lambda wc: format_args(study_cfg(wc.study)["train_data"]),
    log:
        "logs/{study}/prepare.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        PREPARE


rule prepare_dataset:
    conda:
        "../envs/synth.yaml"
    input:
        raw=lambda wc: raw_input(wc.study, wc.dataset),
        code=code_inputs("prepare"),
    output:
        "results/{study}/data/{dataset}/problems.jsonl",
    params:
        raw=lambda wc: raw_location(wc.study, wc.dataset),
        source=lambda wc: wc.dataset,
        format=lambda wc: format_args(wc.dataset),
    log:
        "logs/{study}/prepare/{dataset}.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        PREPARE


def bench_cfg(wildcards):
    return bench_data_cfg(wildcards.bench)


def bench_location(wildcards):
    bench = bench_cfg(wildcards)
    if bench["source"] == "toy":
        return f"results/{wildcards.study}/raw/test.jsonl"
    return bench["path"]


def bench_input(wildcards):
    """The benchmark file as a Snakemake input; a hub id (no such local file) is read by the job."""
    location = bench_location(wildcards)
    hub_id = bench_cfg(wildcards)["source"] == "file" and not Path(location).exists() and \
        not location.endswith((".jsonl", ".json")) and location.count("/") == 1
    return [] if hub_id else location


rule benchmark:
    conda:
        "../envs/synth.yaml"
    input:
        raw=bench_input,
        code=code_inputs("benchmark"),
    output:
        "results/{study}/benchmarks/{bench}.jsonl",
    params:
        bench=lambda wc: as_json(bench_cfg(wc)),
        location=lambda wc: bench_location(wc),
        format=lambda wc: bench_cfg(wc).get("format", "generic"),
        expected=lambda wc: bench_cfg(wc).get("count", 0),
        split=lambda wc: bench_cfg(wc).get("split", "test"),
        question=lambda wc: bench_cfg(wc).get("question_field", "question"),
        answer=lambda wc: bench_cfg(wc).get("answer_field", "answer"),
        limit=lambda wc: bench_cfg(wc).get("limit", 0),
        revision=lambda wc: f" --revision {shlex.quote(bench_cfg(wc)['revision'])}" if bench_cfg(wc).get("revision") else "",
    log:
        "logs/{study}/benchmark/{bench}.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "{MOTAB} benchmark --input {params.location:q} --format {params.format:q} --name {wildcards.bench}"
        " --output {output} --count {params.expected} --limit {params.limit} --split {params.split:q}"
        " --question-field {params.question:q} --answer-field {params.answer:q}{params.revision} > {log} 2>&1"


rule kd_prompts:
    conda:
        "../envs/synth.yaml"
    input:
        problems=lambda wc: dataset_problems(wc.study, wc.dataset),
        code=code_inputs("kd-prompts"),
    output:
        "results/{study}/kd_data/{dataset}.jsonl",
    log:
        "logs/{study}/kd_prompts/{dataset}.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "{MOTAB} kd-prompts --problems {input.problems} --output {output} --deduplicate > {log} 2>&1"


rule reorganize:
    conda:
        "../envs/synth.yaml"
    input:
        rows="results/{study}/synth/{method}.jsonl",
        code=code_inputs("reorganize"),
    output:
        data="results/{study}/sft_data/{method}/train.jsonl",
        info="results/{study}/sft_data/{method}/dataset_info.json",
    log:
        "logs/{study}/reorganize/{method}.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "{MOTAB} reorganize --input {input.rows} --output-dir results/{wildcards.study}/sft_data/{wildcards.method}"
        " --dataset-name {wildcards.method} > {log} 2>&1"


rule train_data_sft:
    # SFT on the train set's own reference solutions (a run whose `sft` names the study's train_data)
    conda:
        "../envs/synth.yaml"
    input:
        problems="results/{study}/data/problems.jsonl",
        code=code_inputs("reorganize"),
    output:
        data=f"results/{{study}}/sft_data/{TRAIN_DATA_SFT}/train.jsonl",
        info=f"results/{{study}}/sft_data/{TRAIN_DATA_SFT}/dataset_info.json",
    log:
        f"logs/{{study}}/reorganize/{TRAIN_DATA_SFT}.log",
    threads: stage_threads("data")
    resources:
        **stage_resources("data"),
    shell:
        "{MOTAB} reorganize --problems {input.problems} --output-dir results/{wildcards.study}/sft_data/" + TRAIN_DATA_SFT
        + " --dataset-name " + TRAIN_DATA_SFT + " > {log} 2>&1"
