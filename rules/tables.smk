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


def table_teacher_shares(wildcards):
    """{run: synth stats file} for the table's rows that were trained on synthesized data."""
    shares = {}
    for run in study_cfg(wildcards.study)["tables"][wildcards.table]["rows"]:
        method = synth_method_of(wildcards.study, run)
        if method:
            shares[run] = f"results/{wildcards.study}/synth/{method}.stats.json"
    return shares


rule table:
    input:
        evals=lambda wc: table_evals(wc.study, wc.table),
        shares=lambda wc: list(table_teacher_shares(wc).values()),
        code=code_inputs("tables"),
    output:
        md="results/{study}/tables/{table}.md",
        csv="results/{study}/tables/{table}.csv",
        tex="results/{study}/tables/{table}.tex",
        spec="results/{study}/tables/{table}.spec.json",
    params:
        spec=table_spec,
        shares=lambda wc: " ".join(f"{run}={path}" for run, path in sorted(table_teacher_shares(wc).items())),
    log:
        "logs/{study}/tables/{table}.log",
    threads: 1
    resources:
        **stage_resources("tables"),
    shell:
        "printf '%s\\n' {params.spec:q} > {output.spec} && "
        "{MOTAB} tables --spec {output.spec} --evals {input.evals} --teacher-share {params.shares} --output-prefix results/{wildcards.study}/tables/{wildcards.table}"
        " > {log} 2>&1"
