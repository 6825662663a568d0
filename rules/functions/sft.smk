# The input functions and parameters of rules/sft.smk (Snakemake's lint: functions apart from rules).


def sft_method(wildcards):
    """The sft_data folder (and LLaMA-Factory dataset name): a synthesis method, or TRAIN_DATA_SFT."""
    return sft_data_folder(wildcards.study, wildcards.run)


def sft_params(wildcards):
    """The study's sft block; with `tracking:`, LLaMA-Factory's report_to/run_name under its
    `llamafactory:` pass-through (the block's own values win)."""
    cfg = STUDIES[wildcards.study].sft_cfg(wildcards.run)  # with the run's training seed
    options = plan.llamafactory_options(study_cfg(wildcards.study).get("tracking"), wildcards.run)
    start = start_of(wildcards.study, wildcards.run)
    revision = STUDIES[wildcards.study].model_revision(start) if start in config["models"] else None
    if revision:  # a hub base model pinned to a revision (models.<name>.revision)
        options = options | {"model_revision": revision}
    return cfg | {"llamafactory": options | cfg.get("llamafactory", {})} if options else cfg


def sft_nodes(wildcards):
    return study_cfg(wildcards.study)["resources"].get("sft", {}).get("nodes", 1)


def sft_launcher(wildcards):
    """Multi-node: one `motab sft` per node (each derives its torchrun rank from SLURM_NODEID)."""
    nodes = sft_nodes(wildcards)
    return f"srun --nodes={nodes} --ntasks-per-node=1 " if nodes > 1 else ""
