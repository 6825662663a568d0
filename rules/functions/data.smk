# The input functions and parameters of rules/data.smk (Snakemake's lint: functions apart from rules).


def raw_input(study, dataset):
    """A dataset's raw file as a Snakemake input: generated for toy data, the hub download's
    manifest of a pinned hub id (its lock for an unpinned one), the local file."""
    data = config["datasets"][dataset]
    if data["source"] == "toy":
        return raw_toy_location(study, dataset)
    downloaded = plan.hub.entry_inputs(config, "datasets", dataset)
    return downloaded[0] if downloaded else (data["path"] if Path(data["path"]).is_file() else [])


def raw_location(study, dataset):
    data = config["datasets"][dataset]
    if data["source"] == "toy":
        return raw_toy_location(study, dataset)
    return plan.hub.entry_location(config, "datasets", dataset) or data["path"]


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
    # a revision for the job to pass to the hub; none for a snapshot or a lock of the download step
    pinned = data.get("revision") and not plan.hub.entry_location(config, "datasets", dataset)
    revision = f" --revision {shlex.quote(data['revision'])}" if pinned else ""
    if "format" not in data and "split" not in data:
        return revision
    return f" --format {shlex.quote(data.get('format', 'limo'))} --split {shlex.quote(data.get('split', 'train'))}{revision}"


def bench_cfg(wildcards):
    return bench_data_cfg(wildcards.bench)


def bench_location(wildcards):
    bench = bench_cfg(wildcards)
    if bench["source"] == "toy":
        return f"results/{wildcards.study}/raw/test.jsonl"
    return plan.hub.entry_location(config, "benchmarks", wildcards.bench) or bench["path"]


def bench_revision(wildcards):
    """--revision for a benchmark read from the hub by the job (none for a download's snapshot or lock)."""
    revision = bench_cfg(wildcards).get("revision")
    if not revision or plan.hub.entry_location(config, "benchmarks", wildcards.bench):
        return ""
    return f" --revision {shlex.quote(revision)}"


def bench_input(wildcards):
    """The benchmark file as a Snakemake input: the hub download's manifest of a pinned hub id, its
    lock for an unpinned one; a hub id read by the job has none."""
    downloaded = plan.hub.entry_inputs(config, "benchmarks", wildcards.bench)
    if downloaded:
        return downloaded[0]
    location = bench_location(wildcards)
    hub_id = (
        bench_cfg(wildcards)["source"] == "file"
        and not Path(location).exists()
        and not location.endswith((".jsonl", ".json"))
        and location.count("/") == 1
    )
    return [] if hub_id else location
