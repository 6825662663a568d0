"""KDFlow on clusters (`python -m motab kdflow`): write its command line, start Ray, run it.

KDFlow (github.com/songmzhang/KDFlow, installed from git in envs/kd.yaml) trains on-policy KD with
an SGLang teacher and rollout engines on Ray. Its CLI is `python -m kdflow.cli.train_kd_on_policy`
with HfArgumentParser flags (kdflow/arguments/*.py, docs/reference/arguments.md). This module
builds that command line from a kd block of config with `engine: kdflow`:

    variant (config `loss`)   KDFlow flags
    rkl                       --kd_algorithm vanilla_kd --kd_loss_fn rkl
    akl                       --kd_algorithm vanilla_kd --kd_loss_fn akl --adaptive_alpha <akl_mu>
    dskd                      --kd_algorithm dskd --kd_loss_fn rkl --dskd_token_align <dskd_token_align>

and the seed's defaults unless config overrides them (DEFAULTS): num_epochs 10, learning_rate
2e-6, train_batch_size 16, n_samples_per_prompt 5, generate_max_len 32768, --enable_sleep True,
dynamic batching (--use_dynamic_bsz True) with max_token_len_per_gpu 8192 (at most 8192).
kd_ratio is 1.0 (pure distillation, no CE term: the prompts carry no reference response).

Ray: the job's first host (SLURM_JOB_NODELIST, see slurm_env) runs `ray start --head`; every other
node of the allocation joins it through `srun --nodes=1 --ntasks=1 -w <host> ray start --address
<head>:<port> --block`. KDFlow then runs on the head with --num_nodes/--num_gpus_per_node of the
allocation, writing into `.<output>.tmp` (renamed when done). The command is kept in the output as
kdflow_command.sh, to rerun by hand. Never run here (no GPUs, no SGLang): `--dry-run` only writes
the script and prints the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from motab.jobenv import child_env
from motab.training.slurm_env import expand_hostlist

ENTRY = ("python", "-m", "kdflow.cli.train_kd_on_policy")
VARIANTS = {
    "rkl": {"kd_algorithm": "vanilla_kd", "kd_loss_fn": "rkl"},
    "akl": {"kd_algorithm": "vanilla_kd", "kd_loss_fn": "akl"},
    "dskd": {"kd_algorithm": "dskd", "kd_loss_fn": "rkl"},
}
DEFAULTS = {"num_epochs": 10, "learning_rate": 2e-6, "train_batch_size": 16, "n_samples_per_prompt": 5,
            "generate_max_len": 32768, "max_token_len_per_gpu": 8192, "temperature": 1.0, "seed": 0,
            "rollout_batch_size": 16, "teacher_tp_size": 1, "akl_mu": 0.5, "dskd_token_align": "eta",
            "lora_rank": 0}
MAX_TOKENS_PER_GPU = 8192
RAY_PORT = 6379


def _flag(value) -> str:
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def kdflow_argv(cfg: dict, *, student: str, teacher: str, prompts: str, save_path: str, nodes: int,
                gpus_per_node: int) -> list[str]:
    """KDFlow's on-policy command line for a kd config block (engine kdflow)."""
    loss = cfg.get("loss")
    if loss not in VARIANTS:
        raise ValueError(f"kd engine kdflow: loss must be one of {sorted(VARIANTS)}, found {loss!r}")
    c = DEFAULTS | {k: v for k, v in cfg.items() if k not in ("engine", "loss")}
    if not 0 < c["max_token_len_per_gpu"] <= MAX_TOKENS_PER_GPU:
        raise ValueError(f"kd engine kdflow: max_token_len_per_gpu must lie in 1..{MAX_TOKENS_PER_GPU}, "
                         f"found {c['max_token_len_per_gpu']}")
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError(f"kdflow needs at least one node and one GPU, found {nodes} x {gpus_per_node}")
    flags = {
        "student_name_or_path": student, "teacher_name_or_path": teacher,
        "train_dataset_path": prompts, "input_key": "messages", "apply_chat_template": True,
        "save_path": save_path, "seed": c["seed"], "bf16": True,
        "num_nodes": nodes, "num_gpus_per_node": gpus_per_node, "backend": "fsdp2",
        "num_epochs": c["num_epochs"], "learning_rate": c["learning_rate"], "train_batch_size": c["train_batch_size"],
        "enable_sleep": True, "use_dynamic_bsz": True, "max_token_len_per_gpu": c["max_token_len_per_gpu"],
        "gradient_checkpointing": True,
        "rollout_num_engines": nodes * gpus_per_node, "rollout_tp_size": 1,
        "rollout_batch_size": c["rollout_batch_size"], "n_samples_per_prompt": c["n_samples_per_prompt"],
        "generate_max_len": c["generate_max_len"], "temperature": c["temperature"],
        "kd_ratio": 1.0, **VARIANTS[loss], "teacher_tp_size": c["teacher_tp_size"],
    }
    if loss == "akl":
        flags["adaptive_alpha"] = c["akl_mu"]
    if loss == "dskd":
        flags["dskd_token_align"] = c["dskd_token_align"]
    if c["lora_rank"]:
        flags |= {"lora_rank": c["lora_rank"], "lora_alpha": c.get("lora_alpha", 2 * c["lora_rank"])}
    return [*ENTRY, *(part for key, value in flags.items() for part in (f"--{key}", _flag(value)))]


def allocation(env: dict) -> tuple[list[str], int]:
    """(hosts, GPUs per node) of the SLURM job, or (["127.0.0.1"], visible GPUs) outside SLURM."""
    if "SLURM_JOB_ID" in env:
        hosts = expand_hostlist(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or "")
        gpus = env.get("SLURM_GPUS_ON_NODE") or env.get("SLURM_GPUS_PER_NODE", "").split(":")[-1]
        if not gpus.isdigit():
            raise ValueError(f"SLURM job {env['SLURM_JOB_ID']}: SLURM_GPUS_ON_NODE is missing; ask for GPUs")
        return hosts, int(gpus)
    import torch

    return ["127.0.0.1"], torch.cuda.device_count()


def ray_commands(hosts: list[str], gpus_per_node: int, port: int = RAY_PORT) -> list[list[str]]:
    """Ray head on hosts[0], one worker per other host (through srun), each with its GPUs."""
    head = hosts[0]
    commands = [["ray", "start", "--head", f"--node-ip-address={head}", f"--port={port}",
                 f"--num-gpus={gpus_per_node}", "--disable-usage-stats"]]
    for host in hosts[1:]:
        commands.append(["srun", "--nodes=1", "--ntasks=1", f"-w={host}", "ray", "start", f"--address={head}:{port}",
                         f"--num-gpus={gpus_per_node}", "--block", "--disable-usage-stats"])
    return commands


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="motab kdflow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--prompts", required=True, help="KDFlow prompt JSONL ({id, messages, ...})")
    p.add_argument("--output", required=True)
    p.add_argument("--params-json", required=True, help="the kd block of config (engine kdflow)")
    p.add_argument("--dry-run", action="store_true", help="write kdflow_command.sh and print the commands only")
    args = p.parse_args(argv)
    cfg = json.loads(args.params_json)
    hosts, gpus = allocation(dict(os.environ))
    output = Path(args.output)
    work = output.with_name(f".{output.name}.tmp")
    command = kdflow_argv(cfg, student=args.student, teacher=args.teacher, prompts=args.prompts,
                          save_path=str(work), nodes=len(hosts), gpus_per_node=gpus)
    ray = ray_commands(hosts, gpus)
    script = "\n".join(["#!/bin/bash", "set -euo pipefail", *(shlex.join(c) + (" &" if "--block" in c else "")
                                                            for c in ray), shlex.join(command), "ray stop", ""])
    work.mkdir(parents=True, exist_ok=True)
    (work / "kdflow_command.sh").write_text(script, encoding="utf-8")
    print(script)
    if args.dry_run:
        return 0
    workers = []
    env = child_env()   # `ray` and `python` of this environment, also for srun's workers (it exports PATH)
    try:
        subprocess.run(ray[0], check=True, env=env)
        workers = [subprocess.Popen(c, env=env) for c in ray[1:]]
        time.sleep(10 if workers else 0)   # workers join the head
        subprocess.run(command, check=True, env=env)
    finally:
        subprocess.run(["ray", "stop"], check=False, env=env)
        for worker in workers:
            worker.terminate()
    shutil.rmtree(output, ignore_errors=True)
    os.replace(work, output)
    return 0
