# The input functions and parameters of rules/report.smk (Snakemake's lint: functions apart from rules).


def trained_table_runs(study):
    """The runs of the study's tables that train a checkpoint (SFT or KD), in table order."""
    return plan.trained_table_runs(STUDIES[study])


def cost_gpus(study):
    """The GPUs each job of the study asks for, as `motab cost --gpus-json` reads them: globs on
    its benchmark file under logs/<study>/ (the most specific match wins), then stage names."""
    cfg = study_cfg(study)
    gpus = {}
    critic = cfg["eval"].get("critic")
    runs = sorted({run for table in cfg["tables"].values() for row in table["rows"] for run in row_runs(cfg, row)})
    for run in runs:  # an eval job asks for its run's model tp x dp, a critic job for its judge's
        wc = SimpleNamespace(study=study, run=run)
        gpus[f"eval/{run}/*"] = eval_gpus(wc, eval_servers(wc))
        if critic:
            gpus[f"eval/{run}/*.critic.benchmark.tsv"] = eval_gpus(wc, [("judge", critic["model"])])
    for method in sorted(cfg.get("synth", {})):  # a synthesis job for its teacher (and drafting student)
        wc = SimpleNamespace(study=study, method=method)
        gpus[f"synth/{method}.benchmark.tsv"] = stage_placement(study, "synth", synth_servers(wc))[1]
    for stage in ("sft", "kd", "toy_model"):  # a stage left out asks for none
        count = stage_resource(stage, "gpus")(SimpleNamespace(study=study))
        if count:
            gpus[stage] = count
    return gpus


def cost_inputs(wildcards):
    """The study's tables, charts and curves: the cost table comes after every job of the study."""
    tables = sorted(study_cfg(wildcards.study)["tables"])
    return (
        [f"results/{wildcards.study}/tables/{table}.md" for table in tables]
        + [f"results/{wildcards.study}/report/{table}.png" for table in tables]
        + [f"results/{wildcards.study}/report/training_curves.png"]
    )


def gpu_memory_fits(study):
    """The plan's GPU memory estimates of the study's jobs, as `motab plan-memory --fits-json` reads them."""
    return plan.fits_json(plan.study_fits(STUDIES[study]))
