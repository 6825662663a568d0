# SFT with LLaMA-Factory: the job writes the tool's YAML into the checkpoint folder (so the
# stage can be rerun by hand with `llamafactory-cli train`) and renames the folder when done.


def sft_method(wildcards):
    """The sft_data folder (and LLaMA-Factory dataset name): a synthesis method, or TRAIN_DATA_SFT."""
    return sft_data_folder(wildcards.study, wildcards.run)


def sft_params(wildcards):
    """The study's sft block; with `tracking:`, LLaMA-Factory's report_to/run_name under its
    `llamafactory:` pass-through (the block's own values win)."""
    from motab.tracking import llamafactory_options

    cfg = with_training_seed(wildcards.study, wildcards.run, study_cfg(wildcards.study)["sft"])
    options = llamafactory_options(study_cfg(wildcards.study).get("tracking"), wildcards.run)
    start = start_of(wildcards.study, wildcards.run)
    revision = config["models"].get(start, {}).get("revision")
    if revision:  # a hub base model pinned to a revision (models.<name>.revision)
        options = options | {"model_revision": revision}
    return cfg | {"llamafactory": options | cfg.get("llamafactory", {})} if options else cfg


def sft_nodes(wildcards):
    return study_cfg(wildcards.study)["resources"].get("sft", {}).get("nodes", 1)


def sft_launcher(wildcards):
    """Multi-node: one `motab sft` per node (each derives its torchrun rank from SLURM_NODEID)."""
    nodes = sft_nodes(wildcards)
    return f"srun --nodes={nodes} --ntasks-per-node=1 " if nodes > 1 else ""


rule sft:
    conda:
        "../envs/sft.yaml"
    container:
        stage_container("sft")
    input:
        data=lambda wc: f"results/{wc.study}/sft_data/{sft_method(wc)}/train.jsonl",
        info=lambda wc: f"results/{wc.study}/sft_data/{sft_method(wc)}/dataset_info.json",
        start=lambda wc: start_inputs(wc.study, wc.run),
        code=code_inputs("sft"),
    output:
        directory("results/{study}/ckpt/sft/{run}"),
    params:
        sft=lambda wc: as_json(sft_params(wc)),
        start=lambda wc: start_location(wc.study, wc.run),
        method=sft_method,
        launcher=sft_launcher,
    log:
        "logs/{study}/sft/{run}.log",
    benchmark:
        "logs/{study}/sft/{run}.benchmark.tsv"
    threads: stage_threads("sft")
    resources:
        **stage_resources("sft"),
        nodes=sft_nodes,
    shell:
        "{params.launcher}{MOTAB} sft --model {params.start:q} --dataset-dir results/{wildcards.study}/sft_data/{params.method}"
        " --dataset {params.method} --output {output} --params-json {params.sft:q} > {log} 2>&1"
