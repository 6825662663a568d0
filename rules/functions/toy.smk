# The input functions and parameters of rules/toy.smk (Snakemake's lint: functions apart from rules).


def toy_dataset_cfg(study):
    return config["datasets"][study_cfg(study)["train_data"]]


def toy_model_cfg(wildcards):
    return config["models"][wildcards.model]
