# Figures for `snakemake --report report.html`: a bar chart per table and the training curves.


def trained_table_runs(study):
    """The runs of the study's tables that train a checkpoint (SFT or KD), in table order."""
    return plan.trained_table_runs(STUDIES[study])


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
