"""The files a study is made of: the eval JSON of each table cell, the tables and figures `all`
builds, and the synthesis stats a table reads for its teacher-share column."""

from __future__ import annotations

from collections.abc import Mapping

from motab.plan.study import Study

TABLE_FORMATS = ("md", "csv", "tex")


def eval_json(study: str, run: str, bench: str, seed) -> str:
    return f"results/{study}/eval/{run}/{bench}/seed{seed}.json"


def table_evals(study: Study, table: str) -> list[str]:
    """The eval JSON files of a table; a table of the critic score reads the critic files instead."""
    cfg = study.cfg
    critic = cfg["tables"][table]["metric"].startswith("critic")
    files = [
        eval_json(study.name, run, bench, seed)
        for row in cfg["tables"][table]["rows"]
        for run in study.row_runs(row)  # with train_seeds: the row's training-seed replicas too
        for bench in cfg["eval"]["benchmarks"]
        for seed in cfg["eval"]["seeds"]
    ]
    return [f.replace(".json", ".critic.json") for f in files] if critic else files


def table_teacher_shares(study: Study, table: str) -> dict[str, str]:
    """{run: synth stats file} for the table's rows that were trained on synthesized data."""
    shares = {}
    for run in study.cfg["tables"][table]["rows"]:
        method = study.synth_method_of(run)
        if method:
            shares[run] = f"results/{study.name}/synth/{method}.stats.json"
    return shares


def data_cards(study: Study) -> list[str]:
    """The data card (rule data_card) of every synthesized dataset a table row was trained on."""
    methods = {study.synth_method_of(row) for table in study.cfg["tables"].values() for row in table["rows"]}
    return [f"results/{study.name}/synth/{method}.card.json" for method in sorted(methods - {None})]


def card_budgets(study: Study) -> dict:
    """The two budgets that can cut a synthesized row: SFT's cutoff_len (prompt + response) and the
    smallest eval max_tokens of any benchmark (a student imitating longer rows is cut there)."""
    cfg_eval = study.cfg.get("eval", {})
    budgets = [cfg_eval.get("max_tokens")] + [
        over.get("max_tokens", cfg_eval.get("max_tokens")) for over in cfg_eval.get("per_benchmark", {}).values()
    ]
    budgets = [b for b in budgets if b]
    return {
        "cutoff_len": study.cfg.get("sft", {}).get("cutoff_len"),
        "eval_max_tokens": min(budgets) if budgets else None,
    }


def trained_table_runs(study: Study) -> list[str]:
    """The runs of the study's tables that train a checkpoint (SFT or KD), in table order; an epoch
    row stands for its SFT run (whose training log the curves read)."""
    runs: list[str] = []
    for table in sorted(study.cfg["tables"]):
        for row in study.cfg["tables"][table]["rows"]:
            run = study.run(row).spec.get("epoch_of", row)
            if "model" not in study.run(run).spec and run not in runs:
                runs.append(run)
    return runs


def evaluated_checkpoints(study: Study) -> list[str]:
    """The pipeline-built checkpoint folders the study's tables evaluate, sorted."""
    found = {
        folder
        for table in study.cfg["tables"]
        for row in study.cfg["tables"][table]["rows"]
        for run in study.row_runs(row)
        for folder in study.checkpoint_inputs(run)
    }
    return sorted(found)


def final_outputs(config: Mapping) -> list[str]:
    """What `snakemake` (rule all) builds for the selected studies: each table in every format, its
    chart, the data card of each synthesized dataset, the study's training curves, its cost table
    (after all of the study's jobs), where it declares resources.gpu_memory_gb its GPU memory
    estimates, and the checkpoints its tables evaluate. Those are targets, not only inputs, because
    Snakemake does not rebuild a missing input whose consumers are up to date: a killed `--forcerun
    kd` (Snakemake deletes the folder when the job starts) left the tables reporting a deleted model
    while `snakemake -n` said "Nothing to be done"."""
    outputs = []
    for name in config["select"]:
        study = Study.of(config, name)
        outputs += data_cards(study)
        for table in sorted(config["studies"][name]["tables"]):
            outputs += [f"results/{name}/tables/{table}.{ext}" for ext in TABLE_FORMATS]
            outputs.append(f"results/{name}/report/{table}.png")
        outputs.append(f"results/{name}/report/training_curves.png")
        outputs.append(f"results/{name}/report/cost.html")  # rule cost_table
        if "gpu_memory_gb" in config["studies"][name].get("resources", {}):  # rule gpu_memory
            outputs.append(f"results/{name}/report/gpu_memory.html")
        outputs += evaluated_checkpoints(study)
    return outputs
