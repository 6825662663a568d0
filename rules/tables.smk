# Paper tables: rows = runs, columns = benchmarks, cells mean ± sample std over eval seeds.


def table_spec(wildcards):
    cfg = study_cfg(wildcards.study)
    table = cfg["tables"][wildcards.table]
    spec = {
        "title": table["title"],
        "metric": table["metric"],
        "scale": table.get("scale", 100),
        "decimals": table.get("decimals", 2),
        "rows": [{"run": run, "label": cfg["runs"][run].get("label", run)} for run in table["rows"]],
        "benchmarks": [
            {"name": bench, "label": config["benchmarks"][bench].get("label", bench)}
            for bench in cfg["eval"]["benchmarks"]
        ],
    }
    if "reference" in table:
        spec["reference"] = table["reference"]
    return as_json(spec)


rule table:
    input:
        lambda wc: table_evals(wc.study, wc.table),
    output:
        md="results/{study}/tables/{table}.md",
        csv="results/{study}/tables/{table}.csv",
        tex="results/{study}/tables/{table}.tex",
        spec="results/{study}/tables/{table}.spec.json",
    params:
        spec=table_spec,
    log:
        "logs/{study}/tables/{table}.log",
    threads: 1
    resources:
        **stage_resources("tables"),
    shell:
        "printf '%s\\n' {params.spec:q} > {output.spec} && "
        "{MOTAB} tables --spec {output.spec} --evals {input} --output-prefix results/{wildcards.study}/tables/{wildcards.table}"
        " > {log} 2>&1"
