"""Planning: what the workflow builds, from the config, without torch and without Snakemake.

The one way the rules (rules/*.smk) reach the package: they import from here only.

- compose:  config.yaml + studies/*.yaml (+ reference TSVs) -> the expanded config;
- sweeps:   the sweep and eval_epochs forms written out as plain runs;
- study:    typed Study / Run, run kinds, the `from` chain, training data, KD sources;
- targets:  eval files, tables and figures a study is made of;
- servers:  server commands and GPU placement of a job's servers;
- tables:   a table's spec (the input of `motab tables`);
- codedeps: the package files each `motab` command runs (the rules' code inputs);
- locate:   the file and line a config key was written on, for error messages;
- memory:   each GPU job's memory per GPU against the study's resources.gpu_memory_gb;
- hub:      the hub snapshots a study reads, where jobs find them, the download step's targets
            (and motab.preflight: are they all to be had, before any job).
"""

from __future__ import annotations

from motab.config_check import startup_errors
from motab.evaluation.settings import (
    PROMPT_TOKENS,
    context_notes,
    evalscope_dataset_args,
    fit_to_context,
    generation_settings,
    per_benchmark_errors,
)
from motab.passthrough import extend_command
from motab.plan import hub
from motab.plan.codedeps import module_files
from motab.plan.compose import (
    ComposeError,
    compose,
    config_files,
    study_file_errors,
    study_files,
    workflow_config,
)
from motab.plan.locate import locate
from motab.plan.memory import fit_table, fits_json, memory_errors, study_fits
from motab.plan.servers import (
    kd_server_errors,
    kd_teacher_server_args,
    placement_arg,
    server_command,
    server_parallel,
    stage_placement,
)
from motab.plan.study import (
    RUN_KINDS,
    SELF,
    STUDENT_METHODS,
    TRAIN_DATA_SFT,
    PlanError,
    Run,
    Study,
    kd_sources,
)
from motab.plan.sweeps import SweepError, row_runs, synth_algorithm
from motab.plan.tables import table_spec
from motab.plan.targets import (
    card_budgets,
    eval_json,
    final_outputs,
    table_evals,
    table_teacher_shares,
    trained_table_runs,
)
from motab.preflight import offline_var, preflight, unpinned_notes
from motab.tracking import kdflow_options, llamafactory_options, wandb_env


def kd_config_errors(config: dict) -> list[str]:
    """What the schema cannot say about kd blocks and KD runs (motab.training.kd.blocks)."""
    from motab.training.kd.blocks import kd_config_errors as errors

    return errors(config)


__all__ = [
    "card_budgets",
    "RUN_KINDS",
    "SELF",
    "STUDENT_METHODS",
    "TRAIN_DATA_SFT",
    "ComposeError",
    "PlanError",
    "Run",
    "Study",
    "SweepError",
    "compose",
    "eval_json",
    "evalscope_dataset_args",
    "extend_command",
    "final_outputs",
    "fit_table",
    "fits_json",
    "generation_settings",
    "hub",
    "fit_to_context",
    "PROMPT_TOKENS",
    "context_notes",
    "kd_config_errors",
    "kd_server_errors",
    "kd_sources",
    "kd_teacher_server_args",
    "kdflow_options",
    "llamafactory_options",
    "locate",
    "memory_errors",
    "module_files",
    "offline_var",
    "per_benchmark_errors",
    "placement_arg",
    "preflight",
    "row_runs",
    "server_command",
    "server_parallel",
    "stage_placement",
    "startup_errors",
    "study_file_errors",
    "study_files",
    "config_files",
    "study_fits",
    "unpinned_notes",
    "synth_algorithm",
    "table_evals",
    "table_spec",
    "table_teacher_shares",
    "trained_table_runs",
    "wandb_env",
    "workflow_config",
]
