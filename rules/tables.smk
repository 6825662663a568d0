# Paper tables: rows = runs, columns = benchmarks, cells mean ± sample std over eval seeds.


rule table:
    input:
        evals=lambda wc: table_evals(wc.study, wc.table),
        shares=lambda wc: list(table_teacher_shares(wc).values()),
        code=code_inputs("tables"),
    output:
        md="results/{study}/tables/{table}.md",
        csv="results/{study}/tables/{table}.csv",
        tex="results/{study}/tables/{table}.tex",
        # the report shows the table itself (an HTML page), not a file to download
        html=report(
            "results/{study}/tables/{table}.html",
            caption="../report/table.rst",
            category="Tables",
            subcategory="{study}",
            labels={"table": "{table}", "view": "table"},  # beside its chart (rules/report.smk)
        ),
        spec="results/{study}/tables/{table}.spec.json",
    log:
        "logs/{study}/tables/{table}.log",
    conda:
        "../envs/tables.yaml"
    threads: stage_threads("tables")
    resources:
        **stage_resources("tables"),
    params:
        spec=table_spec,
        shares=lambda wc: " ".join(f"{run}={path}" for run, path in sorted(table_teacher_shares(wc).items())),
    shell:
        "printf '%s\\n' {params.spec:q} > {output.spec} && "
        "motab tables --spec {output.spec} --evals {input.evals} --teacher-share {params.shares} --output-prefix results/{wildcards.study}/tables/{wildcards.table}"
        " > {log} 2>&1"
