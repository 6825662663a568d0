"""Every GPU command and config the paper studies' SLURM plan generates, judged by the real tools:
LLaMA-Factory 0.9.5's get_train_args on each SFT YAML, EvalScope 1.14.1's TaskConfig (and the dataset
it would read) for each EvalScope job, and KDFlow's parser at 3a7a21a (rebuilt from the committed
record tests/fixtures/kdflow_args.json) for each KDFlow command line. SGLang: tests/test_sglang_args.py."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from dryrun import REPO
from slurm_plan import jobs_running, kdflow_recipe_jobs

pytestmark = pytest.mark.slow

CHECKER = Path(__file__).with_name("llamafactory_check.py")


def flag_values(argv: list[str]) -> dict[str, str]:
    assert len(argv) % 2 == 0 and all(a.startswith("--") for a in argv[::2]), argv
    return {key[2:]: value for key, value in zip(argv[::2], argv[1::2])}


def sft_yaml(argv: list[str]) -> dict:
    """The LLaMA-Factory YAML `motab sft ARGV` writes on a GPU node (motab.training.sft.main)."""
    from motab.training.sft import train_args

    flags = flag_values(argv)
    params = json.loads(flags["params-json"])
    output = Path(flags["output"])
    work = output.with_name(f".{output.name}.tmp")
    trained = work / "adapter" if params["finetuning_type"] == "lora" else work
    return train_args(flags["model"], flags["dataset-dir"], flags["dataset"], str(trained), params, cpu=False)


def env_installs(env_yaml: Path) -> set[str]:
    """The distributions an env's pip pins install: the pins and, through the installed packages'
    metadata, what they require (without extras)."""
    from importlib import metadata

    import yaml
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    deps = yaml.safe_load(env_yaml.read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    todo = [canonicalize_name(Requirement(line).name) for line in pip]
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [canonicalize_name(Requirement(r).name) for r in requires if "extra ==" not in r]
    return seen


def test_llamafactory_accepts_every_sft_yaml_of_the_plan():
    by_gpus = defaultdict(list)
    for job, argv in jobs_running("sft"):
        gpus = job.resources["gpu"] * job.resources.get("nodes", 1)
        by_gpus[gpus].append((job.name, sft_yaml(argv)))
    assert sum(len(v) for v in by_gpus.values()) >= 17, "the paper plans have 17 SFT jobs"
    mandatory = set()
    for gpus, named in sorted(by_gpus.items()):
        proc = subprocess.run(
            [sys.executable, str(CHECKER), str(gpus), str(REPO / "envs" / "sft.yaml")],
            input=json.dumps([config for _, config in named]),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=os.environ | {"HF_HUB_OFFLINE": "1"},
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        answer = json.loads(proc.stdout.splitlines()[-1])
        failed = {name: error for (name, _), error in zip(named, answer["errors"]) if error}
        assert not failed, failed
        mandatory |= set(answer["mandatory"])
    # what LLaMA-Factory requires for these YAMLs (liger-kernel, deepspeed, ...) is what the sft env installs
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    installs = env_installs(REPO / "envs" / "sft.yaml")
    missing = {req for req in mandatory if canonicalize_name(Requirement(req).name) not in installs}
    assert not missing, f"LLaMA-Factory requires {sorted(missing)}; envs/sft.yaml does not install them"


def evalscope_jobs() -> list[tuple[str, argparse.Namespace]]:
    from motab.evaluation.evalscope_engine import _jobs, build_parser

    parser = build_parser()
    out = []
    for job, argv in jobs_running("eval-evalscope"):
        out += [(job.name, one) for one in _jobs(parser, parser.parse_args(argv))]
    return out


def evalscope_source(config: dict, dataset: str) -> tuple[str, str]:
    """(hub, dataset id) EvalScope 1.14.1 reads for a TaskConfig: its own benchmark adapter's answer."""
    from evalscope import TaskConfig
    from evalscope.api.registry import get_benchmark

    adapter = get_benchmark(dataset, TaskConfig(**config))
    return str(adapter.dataset_hub), adapter.dataset_id


def test_evalscope_accepts_every_task_config_and_reads_the_benchmark_we_grade(monkeypatch, tmp_path):
    from motab.evaluation.evalscope_engine import job_task_config

    monkeypatch.chdir(REPO)  # the jobs' relative benchmark paths
    jobs = evalscope_jobs()
    assert len(jobs) >= 125, "the motab plan has 125 EvalScope jobs"
    wrong = {}
    for name, job in jobs:
        config = job_task_config("http://127.0.0.1:30000", job, 0, tmp_path / "sample0")
        hub, dataset_id = evalscope_source(config, job.dataset)
        if Path(job.benchmark_file).is_file():
            ok = Path(dataset_id).resolve() == Path(job.benchmark_file).resolve().parent
        else:  # the Hugging Face id our loader reads (motab.data.prepare.load_hub_dataset), not a
            # ModelScope copy (a second hub and login, other rows) nor an HF id looked up on ModelScope
            ok = hub == "huggingface" and dataset_id == job.benchmark_file.split(":")[0]
        if not ok:
            wrong[f"{name} {job.name}"] = (hub, dataset_id, job.benchmark_file)
    assert not wrong, wrong


def kdflow_parser() -> argparse.ArgumentParser:
    """KDFlow's argument parser at 3a7a21a, rebuilt from the committed record (scripts/kdflow_args_record.py)."""
    record = json.loads((REPO / "tests" / "fixtures" / "kdflow_args.json").read_text())

    def string_to_bool(value: str) -> bool:  # transformers' HfArgumentParser bool type
        if value.lower() in ("yes", "true", "t", "y", "1"):
            return True
        if value.lower() in ("no", "false", "f", "n", "0"):
            return False
        raise argparse.ArgumentTypeError(f"Truthy value expected: got {value}")

    types = {"str": str, "int": int, "float": float, "string_to_bool": string_to_bool, None: None}
    parser = argparse.ArgumentParser(prog="kdflow", exit_on_error=False)
    for a in record["actions"]:
        if a["action"] == "_StoreFalseAction":
            parser.add_argument(*a["flags"], dest=a["dest"], action="store_false")
            continue
        kwargs = {"dest": a["dest"], "type": types[a["type"]], "default": a["default"], "required": a["required"]}
        if a["choices"] is not None:
            kwargs["choices"] = a["choices"]
        if a["nargs"] is not None:
            kwargs["nargs"] = a["nargs"]
        if a["nargs"] == "?":
            kwargs["const"] = a["const"]
        parser.add_argument(*a["flags"], **kwargs)
    return parser


def kdflow_command(argv: list[str], gpus: int, nodes: int, workdir: Path) -> list[str]:
    """The KDFlow command `motab kdflow ARGV --dry-run` writes inside a SLURM job of that allocation."""
    env = os.environ | {
        "SLURM_JOB_ID": "1",
        "SLURM_JOB_NODELIST": ",".join(f"node{i}" for i in range(nodes)),
        "MOTAB_RAY_HEAD_IP": "10.0.0.1",
        "SLURM_GPUS_ON_NODE": str(gpus),
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "motab", "kdflow", *argv, "--dry-run"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import shlex

    line = next(line for line in proc.stdout.splitlines() if "kdflow.cli.train_kd_on_policy" in line)
    return shlex.split(line)


def test_kdflow_parser_accepts_every_kdflow_command_of_the_plan(tmp_path):
    parser = kdflow_parser()
    commands = jobs_running("kdflow", kdflow_recipe_jobs())
    assert len(commands) >= 3, "the motab study has three KDFlow recipes (rkl, akl, dskd)"
    for job, argv in commands:
        command = kdflow_command(argv, job.resources["gpu"], job.resources.get("nodes", 1), tmp_path)
        assert command[:3] == ["python", "-m", "kdflow.cli.train_kd_on_policy"]
        try:
            parser.parse_args(command[3:])
        except (argparse.ArgumentError, SystemExit) as exc:
            pytest.fail(f"{job.name}: KDFlow's parser rejects the command: {exc}")


def test_the_kdflow_record_rejects_unknown_flags_and_bad_values():
    parser = kdflow_parser()
    assert parser.parse_args(["--kd_loss_fn", "rkl", "--bf16", "True"]).bf16 is True
    for bad in (["--no_such_flag", "1"], ["--backend", "deepspeed"], ["--teacher_tp_size", "four"]):
        with pytest.raises((argparse.ArgumentError, SystemExit)):
            parser.parse_args(bad)


def eval_max_tokens() -> list[tuple[str, str, int]]:
    """(job, run, max_tokens) of every generation request the plan's eval jobs send."""
    out = []
    for command in ("eval-evalscope", "eval-generate"):
        for job, argv in jobs_running(command):
            flags = dict(zip(argv, argv[1:]))
            if "--jobs-json" in flags:
                out += [(job.name, job.wildcards["run"], one["max_tokens"]) for one in json.loads(flags["--jobs-json"])]
            else:
                out.append((job.name, job.wildcards["run"], int(flags["--max-tokens"])))
    return out


# max_position_embeddings of the served checkpoints' config.json (what SGLang takes as the context)
SERVED_CONTEXT = {
    "Qwen/Qwen2-7B-Instruct": 32768,
    "Qwen/Qwen3-4B": 40960,
    "Qwen/Qwen3-8B": 40960,
    "Qwen/Qwen3-32B": 40960,
    "Qwen/Qwen3-8B-Base": 32768,
}


def test_every_eval_request_leaves_room_for_its_prompt_in_the_models_context():
    """SGLang rejects prompt + max_new_tokens >= the model's context: each eval job's max_tokens stays
    PROMPT_TOKENS below the served model's context_length (the release's value where that fits)."""
    from motab.evaluation.settings import PROMPT_TOKENS
    from motab.plan import Study, compose, workflow_config

    config = compose(workflow_config(REPO), REPO)
    requests = eval_max_tokens()
    assert len(requests) > 100
    too_long, kept = {}, 0
    for name, run, max_tokens in requests:
        study = name.split("study=")[1].split()[0]
        model = Study.of(config, study).run_model_name(run)
        context = SERVED_CONTEXT.get(config["models"][model].get("path"), config["models"][model].get("context_length"))
        if context is not None and max_tokens + PROMPT_TOKENS > context:
            too_long[name] = (model, max_tokens, context)
        kept += model.startswith("Qwen3-") and study == "motab" and max_tokens == 32768
    assert not too_long, too_long
    assert kept > 0  # the Qwen3 runs keep the release's 32768
