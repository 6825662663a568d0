# Figures for `snakemake --report report.html`: a bar chart per table and the training curves.
# A table's HTML page and its chart share the label `table` and differ in `view` (table | chart):
# Snakemake's report lists one row per table with a table/chart switch above (its toggle for a
# label of two values, each on half the results). The study is the subcategory, not a label: as
# the first label it hid the table name in the switch, so "main (chart)" was no row to click.


rule table_chart:
    input:
        spec="results/{study}/tables/{table}.spec.json",
        evals=lambda wc: table_evals(wc.study, wc.table),
        code=code_inputs("report-chart"),
    output:
        report(
            "results/{study}/report/{table}.png",
            caption="../report/table_chart.rst",
            category="Tables",
            subcategory="{study}",
            labels={"table": "{table}", "view": "chart"},
        ),
    log:
        "logs/{study}/report/{table}.chart.log",
    conda:
        "../envs/tables.yaml"
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    shell:
        "motab report-chart --spec {input.spec} --evals {input.evals} --output {output} > {log} 2>&1"


rule training_curves:
    input:
        checkpoints=lambda wc: [checkpoint_location(wc.study, run) for run in trained_table_runs(wc.study)],
        code=code_inputs("training-curves"),
    output:
        report(
            "results/{study}/report/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "training curves"},
        ),
    log:
        "logs/{study}/report/training_curves.log",
    conda:
        "../envs/tables.yaml"
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    params:
        runs=lambda wc: " ".join(
            shlex.quote(f"{run_cfg(wc.study, run).get('label', run)}={checkpoint_location(wc.study, run)}")
            for run in trained_table_runs(wc.study)
        ),
    shell:
        "motab training-curves --run {params.runs} --output {output} > {log} 2>&1"


rule cost_table:
    input:
        done=cost_inputs,
        code=code_inputs("cost"),
    output:
        csv="results/{study}/report/cost.csv",
        md="results/{study}/report/cost.md",
        html=report(
            "results/{study}/report/cost.html",
            caption="../report/cost.rst",
            category="Cost",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "cost per stage"},
        ),
    log:
        "logs/{study}/report/cost.log",
    # Hours per stage from the jobs' benchmark files x the GPUs each asked for (CPU hours where none)
    conda:
        "../envs/tables.yaml"
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    params:
        gpus=lambda wc: as_json(cost_gpus(wc.study)),
    shell:
        "motab cost --study {wildcards.study} --logs logs --gpus-json {params.gpus:q} --csv {output.csv}"
        " --md {output.md} --html {output.html} > {log} 2>&1"


rule gpu_memory:
    # the plan's GPU memory estimates of the study's jobs (motab/plan/memory.py; docs/kd.md)
    input:
        code=code_inputs("plan-memory"),
    output:
        tsv="results/{study}/report/gpu_memory.tsv",
        html=report(
            "results/{study}/report/gpu_memory.html",
            caption="../report/gpu_memory.rst",
            category="Cost",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "GPU memory per job"},
        ),
    log:
        "logs/{study}/report/gpu_memory.log",
    conda:
        "../envs/tables.yaml"
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    params:
        fits=lambda wc: gpu_memory_fits(wc.study),
    shell:
        "motab plan-memory --fits-json {params.fits:q} --tsv {output.tsv} --html {output.html} > {log} 2>&1"
