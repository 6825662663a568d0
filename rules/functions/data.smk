# The input functions and parameters of rules/data.smk (Snakemake's lint: functions apart from rules).


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


def format_args(dataset):
    """--format/--split of a dataset in another release's fields (none for toy and LIMO files)."""
    data = config["datasets"][dataset]
    revision = f" --revision {shlex.quote(data['revision'])}" if data.get("revision") else ""
    if "format" not in data and "split" not in data:
        return revision
    return f" --format {shlex.quote(data.get('format', 'limo'))} --split {shlex.quote(data.get('split', 'train'))}{revision}"


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
    hub_id = (
        bench_cfg(wildcards)["source"] == "file"
        and not Path(location).exists()
        and not location.endswith((".jsonl", ".json"))
        and location.count("/") == 1
    )
    return [] if hub_id else location
