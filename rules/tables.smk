# Paper tables: rows = runs, columns = benchmarks, cells mean ± sample std over eval seeds.


def table_spec(wildcards):
    cfg = study_cfg(wildcards.study)
    return as_json(plan.table_spec(wildcards.study, cfg, config["benchmarks"], wildcards.table))


def table_teacher_shares(wildcards):
    """{run: synth stats file} for the table's rows that were trained on synthesized data."""
    return plan.table_teacher_shares(STUDIES[wildcards.study], wildcards.table)


rule table:
    conda:
        "../envs/tables.yaml"
    input:
        evals=lambda wc: table_evals(wc.study, wc.table),
        shares=lambda wc: list(table_teacher_shares(wc).values()),
        code=code_inputs("tables"),
    output:
        md="results/{study}/tables/{table}.md",
        csv="results/{study}/tables/{table}.csv",
        tex="results/{study}/tables/{table}.tex",
        # the report shows the table itself (an HTML page), not a file to download
        html=report("results/{study}/tables/{table}.html", caption="../report/table.rst", category="Tables",
                    subcategory="{study}", labels={"study": "{study}", "figure": "{table}"}),
        spec="results/{study}/tables/{table}.spec.json",
    params:
        spec=table_spec,
        shares=lambda wc: " ".join(f"{run}={path}" for run, path in sorted(table_teacher_shares(wc).items())),
    log:
        "logs/{study}/tables/{table}.log",
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    shell:
        "printf '%s\\n' {params.spec:q} > {output.spec} && "
        "{MOTAB} tables --spec {output.spec} --evals {input.evals} --teacher-share {params.shares} --output-prefix results/{wildcards.study}/tables/{wildcards.table}"
        " > {log} 2>&1"
