# Targets and helpers derived from config: which files each study needs, which checkpoint a run
# starts from, the parameters each rule passes on (so a changed value reruns that rule). The logic
# is motab.plan's (torch-free, unit-tested); the rules reach the package through it alone.
import json
import os
import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

from motab import plan

# Each finding names the file and line its key was written on (an override file, the study's file
# or config.yaml: motab/plan/locate.py), then the key path and what was expected.
_OVERRIDES = tuple(str(path) for path in workflow.config_settings.configfiles)


def _located(errors):
    return [plan.locate(error, ".", _OVERRIDES) for error in errors]


# Defaults, run grids, published numbers (studies/<study>.reference.tsv), sweeps and eval_epochs are
# filled in (motab/plan/compose.py) before validation, so the schema checks every expanded value.
if plan.study_file_errors():
    raise ValueError("config:\n  " + "\n  ".join(plan.study_file_errors()))
try:
    config.update(plan.compose(config))
except (plan.ComposeError, plan.SweepError) as _error:
    raise ValueError(f"config: {_located([str(_error)])[0]}") from None

# One line per finding (key path and what was expected), before Snakemake's own validation (which
# dumps the failing sub-schema) and before any input function can stop on a bare KeyError.
with open(Path(workflow.basedir) / "schemas" / "config.schema.yaml", encoding="utf-8") as _handle:
    _CONFIG_ERRORS = _located(plan.startup_errors(config, yaml.safe_load(_handle)))
if _CONFIG_ERRORS:
    raise ValueError("config:\n  " + "\n  ".join(_CONFIG_ERRORS))
validate(config, "../schemas/config.schema.yaml")
for _errors in [plan.per_benchmark_errors(name, study["eval"]) for name, study in config["studies"].items()]:
    if _errors:
        raise ValueError("; ".join(_located(_errors)))
if plan.kd_config_errors(config):
    raise ValueError("config: " + "\n  ".join(_located(plan.kd_config_errors(config))))

STUDIES = {name: plan.Study.of(config, name) for name in config["studies"]}
# each GPU job's memory per GPU against resources.gpu_memory_gb, and a KD teacher server's GPUs beside
# its trainer's, before any job runs (motab/plan/memory.py, servers.py): the selected studies' jobs,
# the ones this run plans
_SELECTED = {**config, "studies": {name: config["studies"][name] for name in config["select"]}}
_FIT_ERRORS = plan.kd_server_errors(_SELECTED) + plan.memory_errors(_SELECTED)
if _FIT_ERRORS:
    raise ValueError("config: " + "\n  ".join(_located(_FIT_ERRORS)))
# eval max_tokens capped to a model's context: said once at plan time (motab.evaluation.settings)
for _name, _study in STUDIES.items():
    if _name not in config["select"]:
        continue
    _run_models = {run: _study.run_model_name(run) for run in config["studies"][_name]["runs"]}
    for _note in plan.context_notes(_name, config["studies"][_name]["eval"], config["models"], _run_models):
        print(f"note: {_note}", file=sys.stderr)

# wandb offline (`tracking: {mode: offline}` of a selected study): every job's trainer writes its
# runs locally, for compute nodes without network (motab/tracking.py)
os.environ.update(plan.wandb_env([config["studies"][name] for name in config["select"]], os.environ))

# The pre-flight (motab/preflight.py). Offline (HF_HUB_OFFLINE, ...) the hub inputs missing from the
# hub cache are listed at start-up, in a dry run too, at no network cost; before the first job of a
# real run (onstart, main process only) the online check runs as well and anything missing stops it.
# Unpinned hub datasets and benchmarks are said once: the commit their lock holds (motab/hublock.py).
if workflow.is_main_process:
    for _line in plan.unpinned_notes(config, config["select"]):
        print(f"pre-flight: {_line}", file=sys.stderr)
if workflow.is_main_process and plan.offline_var(os.environ):
    for _line in plan.preflight(config, config["select"]):
        print(f"pre-flight: {_line}", file=sys.stderr)


onstart:
    if workflow.is_main_process and not workflow.touch:
        _missing = plan.preflight(config, config["select"])
        if _missing:
            print("pre-flight: inputs missing, no job started:", *_missing, sep="\n  ", file=sys.stderr)
            raise SystemExit(1)


def _python():
    # Inside per-rule conda envs (`--software-deployment-method conda`) the env's python runs
    # the package; otherwise the interpreter running Snakemake (the project's venv).
    methods = {str(m).lower() for m in getattr(workflow.deployment_settings, "deployment_method", ())}
    return "python" if any("conda" in m for m in methods) else sys.executable


# The rules run `motab <command>`: this workflow's scripts/motab, first on PATH, which starts
# `$MOTAB_PYTHON -m motab`. Jobs inherit both (a SLURM job re-reads this file and sets them again;
# Apptainer prepends the folder inside an image), so commands name no machine path and `srun` can
# start them on every node.
PYTHON = _python()
_SCRIPTS = str(Path(workflow.basedir).resolve() / "scripts")
os.environ.update(
    MOTAB_PYTHON=PYTHON,
    PATH=os.pathsep.join([_SCRIPTS, os.environ.get("PATH", "")]),
    APPTAINERENV_PREPEND_PATH=_SCRIPTS,
)


def study_cfg(study):
    return config["studies"][study]


def as_json(obj):
    """Canonical JSON of config values: the params a rule exposes to --rerun-triggers params."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


wildcard_constraints:
    study="|".join(sorted(config["studies"])),
    run=r"[A-Za-z0-9_.-]+",
    snapshot=r"(models|datasets)--[A-Za-z0-9_.-]+@[0-9a-f]{40}",
    bench=r"[A-Za-z0-9_.-]+",
    seed=r"\d+",
    method=r"[a-z0-9_]+(\.filtered)?",
    model=r"[A-Za-z0-9_.-]+",
    dataset="|".join(re.escape(name) for name in sorted(config["datasets"])),
    # only the configured tables: keeps report/{table}.png from matching report/training_curves.png
    table="|".join(sorted({t for s in config["studies"].values() for t in s.get("tables", {})})),


# --- code: the package files each rule runs are its inputs ------------------------------------


def _package_root():
    """The folder holding the `motab` package that the jobs import (PYTHONPATH, the venv, or here)."""
    return Path(plan.__file__).resolve().parents[2]


PACKAGE_ROOT = _package_root()


def code_inputs(*commands):
    """The motab source files that `python -m motab <command>` runs (its imports, transitively), so
    editing one reruns the rules that run it and what follows, and nothing else. Relative to the
    working directory where the package lives inside it, absolute otherwise."""
    cwd = Path.cwd().resolve()
    files = []
    for name in plan.module_files(str(PACKAGE_ROOT), *commands):
        path = PACKAGE_ROOT / name
        files.append(str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path))
    return files


# --- models and checkpoints (motab.plan.Study) ------------------------------------------------


def is_toy_model(name):
    return config["models"][name]["source"] == "toy"


def model_location(study, name):
    return STUDIES[study].model_location(name)


def model_inputs(study, name):
    """What a job reading the model waits for: a toy model's folder or a hub download's manifest."""
    return STUDIES[study].model_inputs(name)


def run_cfg(study, run):
    return study_cfg(study)["runs"][run]


def checkpoint_location(study, run):
    return STUDIES[study].checkpoint_location(run)


def checkpoint_inputs(study, run):
    return STUDIES[study].checkpoint_inputs(run)


def start_of(study, run):
    return STUDIES[study].start_of(run)


def start_location(study, run):
    return STUDIES[study].start_location(run)


def start_inputs(study, run):
    return STUDIES[study].start_inputs(run)


def server_command(study, model_name, stage=None, role=None):
    return plan.server_command(STUDIES[study], model_name, stage, role)


def stage_placement(study, stage, servers):
    return plan.stage_placement(STUDIES[study], stage, servers)


def placement_arg(study, stage, servers):
    return plan.placement_arg(STUDIES[study], stage, servers)


def run_model_name(study, run):
    return STUDIES[study].run_model_name(run)


def bench_data_cfg(name):
    """A benchmark's config without its display label (a label change reruns only the tables)."""
    return {k: v for k, v in config["benchmarks"][name].items() if k != "label"}


TRAIN_DATA_SFT = plan.TRAIN_DATA_SFT


def sft_data_folder(study, run):
    return STUDIES[study].sft_data_folder(run)


def synth_method_of(study, run):
    return STUDIES[study].synth_method_of(run)


def stage_container(stage):
    """The stage's image (config `containers`), used under --software-deployment-method apptainer."""
    return config.get("containers", {}).get(stage)


# --- resources: one place in config per stage ------------------------------------------------


def stage_resource(stage, key):
    return lambda wildcards: STUDIES[wildcards.study].resource(stage, key)


def stage_threads(stage):
    # a rule's threads are its stage's cpus_per_task (cpus_per_gpu where CPUs scale with GPUs):
    # locally Snakemake sets OMP_NUM_THREADS to them; a SLURM job gets the CPUs of its resources and
    # `motab` sets its threads from SLURM_CPUS_PER_TASK
    return lambda wildcards: STUDIES[wildcards.study].job_resources(stage, 1)["cpus_per_task"]


def server_startup(stage):
    """Seconds a job of the stage waits for each server it starts (resources.<stage>.server_startup_s):
    a resource, so raising it after a timeout reruns nothing that finished."""
    return lambda wildcards: STUDIES[wildcards.study].server_startup_s(stage)


def stage_resources(stage, gpu=None):
    """A rule's resources from its stage's config (motab.plan.resources): `gpu` (a function of
    wildcards) replaces the stage's GPU count where the job's servers decide it (stage_placement);
    CPUs and memory may scale with the job's GPUs; partition and QOS follow GPU or CPU use."""
    gpus = gpu or stage_resource(stage, "gpus")

    def one(key):
        return lambda wildcards: STUDIES[wildcards.study].job_resources(stage, gpus(wildcards)).get(key)

    # a key whose value is None (no partition / QOS configured) is left out of the job (Snakemake)
    names = ("cpus_per_task", "mem_mb", "runtime", "slurm_partition", "qos")
    return dict(gpu=gpus, **{key: one(key) for key in names})


# --- targets (motab.plan.targets) ------------------------------------------------------------


def table_evals(study, table):
    return plan.table_evals(STUDIES[study], table)


def row_runs(cfg, row):
    """A table row's runs: the run itself, then its training-seed replicas (motab.plan.sweeps)."""
    return plan.row_runs(cfg, row)


def final_outputs():
    return plan.final_outputs(config)
