# Figures for `snakemake --report report.html`: a bar chart per table and the training curves.


def trained_table_runs(study):
    """The runs of the study's tables that train a checkpoint (SFT or KD), in table order."""
    cfg = study_cfg(study)
    runs = []
    for table in sorted(cfg["tables"]):
        for run in cfg["tables"][table]["rows"]:
            run = run_cfg(study, run).get("epoch_of", run)  # an epoch row: the curve of its SFT run
            if "model" not in run_cfg(study, run) and run not in runs:
                runs.append(run)
    return runs


rule table_chart:
    conda:
        "../envs/tables.yaml"
    input:
        spec="results/{study}/tables/{table}.spec.json",
        evals=lambda wc: table_evals(wc.study, wc.table),
        code=code_inputs("report-chart"),
    output:
        report("results/{study}/report/{table}.png", caption="../report/table_chart.rst", category="Tables",
               subcategory="{study}", labels={"study": "{study}", "figure": "{table} (chart)"}),
    log:
        "logs/{study}/report/{table}.chart.log",
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    shell:
        "{MOTAB} report-chart --spec {input.spec} --evals {input.evals} --output {output} > {log} 2>&1"


rule training_curves:
    conda:
        "../envs/tables.yaml"
    input:
        checkpoints=lambda wc: [checkpoint_location(wc.study, run) for run in trained_table_runs(wc.study)],
        code=code_inputs("training-curves"),
    output:
        report("results/{study}/report/training_curves.png", caption="../report/training_curves.rst",
               category="Training", subcategory="{study}", labels={"study": "{study}", "figure": "training curves"}),
    params:
        runs=lambda wc: " ".join(
            shlex.quote(f"{run_cfg(wc.study, run).get('label', run)}={checkpoint_location(wc.study, run)}")
            for run in trained_table_runs(wc.study)
        ),
    log:
        "logs/{study}/report/training_curves.log",
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    shell:
        "{MOTAB} training-curves --run {params.runs} --output {output} > {log} 2>&1"


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
    return ([f"results/{wildcards.study}/tables/{table}.md" for table in tables]
            + [f"results/{wildcards.study}/report/{table}.png" for table in tables]
            + [f"results/{wildcards.study}/report/training_curves.png"])


rule cost_table:
    # Hours per stage from the jobs' benchmark files x the GPUs each asked for (CPU hours where none)
    conda:
        "../envs/tables.yaml"
    input:
        done=cost_inputs,
        code=code_inputs("cost"),
    output:
        csv="results/{study}/report/cost.csv",
        md="results/{study}/report/cost.md",
        html=report("results/{study}/report/cost.html", caption="../report/cost.rst", category="Cost",
                    subcategory="{study}", labels={"study": "{study}", "figure": "cost per stage"}),
    params:
        gpus=lambda wc: as_json(cost_gpus(wc.study)),
    log:
        "logs/{study}/report/cost.log",
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    shell:
        "{MOTAB} cost --study {wildcards.study} --logs logs --gpus-json {params.gpus:q} --csv {output.csv}"
        " --md {output.md} --html {output.html} > {log} 2>&1"
