# The input functions and parameters of rules/tables.smk (Snakemake's lint: functions apart from rules).


def table_spec(wildcards):
    cfg = study_cfg(wildcards.study)
    return as_json(plan.table_spec(wildcards.study, cfg, config["benchmarks"], wildcards.table))


def table_teacher_shares(wildcards):
    """{run: synth stats file} for the table's rows that were trained on synthesized data."""
    return plan.table_teacher_shares(STUDIES[wildcards.study], wildcards.table)
