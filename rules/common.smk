# Targets and helpers derived from config: which files each study needs, which checkpoint a
# run starts from, the parameters each rule passes on (so a changed value reruns that rule).
import json
import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

# Sweep lists of synthesis parameters and runs' eval_epochs become plain runs (motab/plan_sweeps.py)
# before validation, so the schema checks every expanded value.
from motab.plan_sweeps import expand_config, row_runs, synth_algorithm, training_seed

config.update(expand_config(config))

from motab.config_check import startup_errors

# One line per finding (key path and what was expected), before Snakemake's own validation (which
# dumps the failing sub-schema) and before any input function can stop on a bare KeyError.
with open(Path(workflow.basedir) / "schemas" / "config.schema.yaml", encoding="utf-8") as _handle:
    _CONFIG_ERRORS = startup_errors(config, yaml.safe_load(_handle))
if _CONFIG_ERRORS:
    raise ValueError("config:\n  " + "\n  ".join(_CONFIG_ERRORS))
validate(config, "../schemas/config.schema.yaml")
from motab.evaluation.settings import per_benchmark_errors

for _errors in [per_benchmark_errors(name, study["eval"]) for name, study in config["studies"].items()]:
    if _errors:
        raise ValueError("; ".join(_errors))


def _python():
    # Inside per-rule conda envs (`--software-deployment-method conda`) the env's python runs
    # the package; otherwise the interpreter running Snakemake (the project's venv).
    methods = {str(m).lower() for m in getattr(workflow.deployment_settings, "deployment_method", ())}
    return "python" if any("conda" in m for m in methods) else sys.executable


PY = _python()
MOTAB = f"{shlex.quote(PY)} -m motab"  # quoted: a venv path may hold spaces


def study_cfg(study):
    return config["studies"][study]


def as_json(obj):
    """Canonical JSON of config values: the params a rule exposes to --rerun-triggers params."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


wildcard_constraints:
    study="|".join(sorted(config["studies"])),
    run=r"[A-Za-z0-9_.-]+",
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
    import importlib.util

    spec = importlib.util.find_spec("motab")
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parents[1]
    return Path(workflow.basedir).resolve()


def _load_codedeps(root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("motab_codedeps", root / "motab" / "codedeps.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


PACKAGE_ROOT = _package_root()
_CODEDEPS = _load_codedeps(PACKAGE_ROOT)


def code_inputs(*commands):
    """The motab source files that `python -m motab <command>` runs (its imports, transitively), so
    editing one reruns the rules that run it and what follows, and nothing else. Relative to the
    working directory where the package lives inside it, absolute otherwise."""
    cwd = Path.cwd().resolve()
    files = []
    for name in _CODEDEPS.module_files(str(PACKAGE_ROOT), *commands):
        path = PACKAGE_ROOT / name
        files.append(str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path))
    return files


# --- models and checkpoints ------------------------------------------------------------------


def is_toy_model(name):
    return config["models"][name]["source"] == "toy"


def model_location(study, name):
    """Folder of a model: built by the pipeline for toy models, a hub id or path otherwise."""
    if is_toy_model(name):
        return f"results/{study}/models/{name}"
    return config["models"][name]["path"]


def run_cfg(study, run):
    return study_cfg(study)["runs"][run]


def with_training_seed(study, run, block):
    """An SFT or KD block with the run's training seed (studies.<s>.train_seeds, a replica's own)."""
    seed = training_seed(study_cfg(study), run, block.get("seed"))
    return block if seed is None or seed == block.get("seed") else block | {"seed": seed}


def checkpoint_location(study, run):
    """Where the weights of a run live: its base model, or the SFT / KD checkpoint it trains."""
    spec = run_cfg(study, run)
    if "epoch" in spec:  # an eval_epochs run: the SFT run's checkpoint saved at that epoch
        return f"results/{study}/ckpt/sft/{spec['epoch_of']}/epoch{spec['epoch']}"
    if "model" in spec:
        return model_location(study, spec["model"])
    if "sft" in spec:
        return f"results/{study}/ckpt/sft/{run}"
    return f"results/{study}/ckpt/kd/{run}"


def checkpoint_inputs(study, run):
    """The pipeline-built files a run's weights depend on (none for a hub model)."""
    spec = run_cfg(study, run)
    if "model" in spec and not is_toy_model(spec["model"]):
        return []
    if "epoch" in spec:
        return [f"results/{study}/ckpt/sft/{spec['epoch_of']}"]
    return [checkpoint_location(study, run)]


def start_of(study, run):
    """The run or model a trained run starts from: `from`, else the study's student."""
    spec = run_cfg(study, run)
    source = spec.get("from", study_cfg(study)["student"])
    return source


def start_location(study, run):
    source = start_of(study, run)
    if source in study_cfg(study)["runs"]:
        return checkpoint_location(study, source)
    return model_location(study, source)


def start_inputs(study, run):
    source = start_of(study, run)
    if source in study_cfg(study)["runs"]:
        return checkpoint_inputs(study, source)
    return [model_location(study, source)] if is_toy_model(source) else []


def server_parallel(study, model_name, stage=None, role=None):
    """tp and dp of a model's server: the model's (default 1), overridden for one stage's role by
    studies.<study>.resources.<stage>.servers.<role> (e.g. the synthesis student on 4 GPUs)."""
    base = config["models"].get(model_name, {})
    over = study_cfg(study)["resources"].get(stage, {}).get("servers", {}).get(role, {}) if stage else {}
    return {"tp": over.get("tp", base.get("tp", 1)), "dp": over.get("dp", base.get("dp", 1))}


def server_command(study, model_name, stage=None, role=None):
    """The study's server launch command, with the model's tensor- and data-parallel sizes filled in."""
    from motab.passthrough import extend_command

    name = study_cfg(study)["server"]
    template = config["servers"][name]
    if study_cfg(study).get("sglang"):  # the study's `sglang:` options, passed to launch_server unchanged
        if "sglang" not in template:
            raise ValueError(f"studies.{study}.sglang: the study's server {name!r} is not SGLang ({template})")
        template = extend_command(template, study_cfg(study)["sglang"], f"studies.{study}.sglang")
    revision = config["models"].get(model_name, {}).get("revision")
    if revision and "sglang" in template:  # the hub model's pinned revision (models.<name>.revision)
        template = extend_command(template, {"revision": revision}, f"models.{model_name}.revision")
    parallel = server_parallel(study, model_name, stage, role)
    return template.replace("{tp}", str(parallel["tp"])).replace("{dp}", str(parallel["dp"]))


# --- GPU placement of a job's servers (motab.serving.placement) ------------------------------


def stage_placement(study, stage, servers):
    """(placements, GPUs the job asks for) of a job of `stage` starting `servers` [(role, model)]:
    disjoint GPU blocks in order (or shared with share_gpus: true) within the stage's gpus. A job
    whose servers need more GPUs than that stops the plan (`snakemake -n`) with the config key."""
    from motab.serving.placement import ServerNeed, job_gpus, place

    resources = study_cfg(study)["resources"]
    own = resources.get(stage, {})
    budget = own.get("gpus", resources["default"]["gpus"])
    where = f"studies.{study}.resources.{stage if 'gpus' in own else 'default'}.gpus"
    needs = [ServerNeed(role, model, **server_parallel(study, model, stage, role)) for role, model in servers]
    placements = place(needs, budget, own.get("share_gpus", False), where=where)
    return placements, (job_gpus(needs, own.get("share_gpus", False)) if budget else 0)


def placement_arg(study, stage, servers):
    """`--placement JSON` for a job with GPUs; nothing on CPU (an empty value would swallow the next flag)."""
    from motab.serving.placement import to_json

    placements, gpus = stage_placement(study, stage, servers)
    return f"--placement {shlex.quote(to_json(placements))}" if gpus else ""


def run_model_name(study, run):
    """The config model a run's architecture comes from (for its server's tp)."""
    spec = run_cfg(study, run)
    if "model" in spec:
        return spec["model"]
    source = spec.get("from", study_cfg(study)["student"])  # a second student: `from: Qwen2-7B`
    return run_model_name(study, source) if source in study_cfg(study)["runs"] else source


def bench_data_cfg(name):
    """A benchmark's config without its display label (a label change reruns only the tables)."""
    return {k: v for k, v in config["benchmarks"][name].items() if k != "label"}


TRAIN_DATA_SFT = "train-data"  # sft_data folder of SFT on the train set's own solutions


def sft_on_train_data(study, run):
    """True when a run's `sft` names the study's train_data (SFT on that set's own reference
    solutions, e.g. GSM8K's or OpenThoughts3's) rather than a synthesis method's file."""
    name = run_cfg(study, run)["sft"]
    if name.removesuffix(".filtered") in study_cfg(study).get("synth", {}) or name not in config["datasets"]:
        return False
    if name != study_cfg(study)["train_data"]:
        raise ValueError(f"studies.{study}.runs.{run}.sft: {name!r} is a dataset but not the study's train_data "
                         f"({study_cfg(study)['train_data']!r}); SFT reads a synthesis method or the train data")
    return True


def sft_data_folder(study, run):
    """The sft_data/<folder> a run trains on: a synthesis method's, or the train data's own."""
    return TRAIN_DATA_SFT if sft_on_train_data(study, run) else run_cfg(study, run)["sft"]


def synth_method_of(study, run):
    """The synthesis file a run's training data came from (following `from`), or None."""
    spec = run_cfg(study, run)
    if "sft" in spec:
        return None if sft_on_train_data(study, run) else spec["sft"]
    source = spec.get("from")
    if "kd" in spec and source in study_cfg(study)["runs"]:
        return synth_method_of(study, source)
    return None


def stage_container(stage):
    """The stage's image (config `containers`), used under --software-deployment-method apptainer."""
    return config.get("containers", {}).get(stage)


# --- resources: one place in config per stage ------------------------------------------------


def stage_resource(stage, key):
    def get(wildcards):
        resources = study_cfg(wildcards.study)["resources"]
        return resources.get(stage, {}).get(key, resources["default"][key])

    return get


def stage_threads(stage):
    # a rule's threads are its stage's cpus_per_task: locally Snakemake sets OMP_NUM_THREADS to them,
    # in a SLURM job they are the job's CPUs (and `motab` sets its threads from SLURM_CPUS_PER_TASK)
    return stage_resource(stage, "cpus_per_task")


def stage_resources(stage, gpu=None):
    """A rule's resources from its stage's config; `gpu` (a function of wildcards) replaces the
    stage's GPU count where the job's servers decide it (stage_placement)."""
    return dict(
        gpu=gpu or stage_resource(stage, "gpus"),
        cpus_per_task=stage_resource(stage, "cpus_per_task"),
        mem_mb=stage_resource(stage, "mem_mb"),
        runtime=stage_resource(stage, "runtime"),
    )


# --- targets ---------------------------------------------------------------------------------


def eval_json(study, run, bench, seed):
    return f"results/{study}/eval/{run}/{bench}/seed{seed}.json"


def table_evals(study, table):
    """The eval JSON files of a table; a table of the critic score reads the critic files instead."""
    cfg = study_cfg(study)
    critic = cfg["tables"][table]["metric"].startswith("critic")
    return [
        eval_json(study, run, bench, seed).replace(".json", ".critic.json") if critic else eval_json(study, run, bench, seed)
        for row in cfg["tables"][table]["rows"]
        for run in row_runs(cfg, row)
        for bench in cfg["eval"]["benchmarks"]
        for seed in cfg["eval"]["seeds"]
    ]


def final_outputs():
    outputs = []
    for study in config["select"]:
        for table in sorted(study_cfg(study)["tables"]):
            outputs += [f"results/{study}/tables/{table}.{ext}" for ext in ("md", "csv", "tex")]
            outputs.append(f"results/{study}/report/{table}.png")
        outputs.append(f"results/{study}/report/training_curves.png")
        outputs.append(f"results/{study}/report/cost.html")  # after all of the study's jobs (rule cost_table)
    return outputs
