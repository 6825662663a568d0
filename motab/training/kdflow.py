"""KDFlow on clusters (`motab kdflow`): write its command line, start Ray, run it, pick the checkpoint.

KDFlow (github.com/songmzhang/KDFlow, installed from git in envs/kd.yaml) trains on-policy KD with
an SGLang teacher and rollout engines on Ray. Its CLI is `python -m kdflow.cli.train_kd_on_policy`
with HfArgumentParser flags (kdflow/arguments/*.py). This module builds that command line from a
kd block of config with `engine: kdflow`:

    variant (config `loss`)   KDFlow flags
    rkl                       --kd_algorithm vanilla_kd --kd_loss_fn rkl
    akl                       --kd_algorithm vanilla_kd --kd_loss_fn akl --adaptive_alpha <akl_mu>
    dskd                      --kd_algorithm dskd --kd_loss_fn rkl --dskd_topk_vocab -1 --dskd_projector_lr 1e-4

Every other flag is the seed's (wangbing1416/MOTAB run_onpolicy_kd*.sh) unless config sets the key
of the same name (SCRIPT_FLAGS): thinking prompts (--enable_thinking True), rollouts at temperature
0.6 and top_p 0.95, 32 prompts a rollout x 5 samples, 10 epochs at lr 2e-6 (5% warm-up), batch 16
in micro-batches of 1, Liger kernels, sleep mode. The scripts leave dynamic batching off (its two
lines are commented out); `use_dynamic_bsz: true` turns it on with max_token_len_per_gpu (<= 8192).
They pass no --seed (KDFlow's default, 42) and teacher_dp_size = GPUs / teacher_tp_size.

Checkpoint: KDFlow writes the student after each epoch under save_path/epoch_N (and every
save_steps under epoch_N_global_step_M, the rollouts under rollout_data/). The checkpoint eval
receives is epoch `checkpoint_epoch` (default: the last): its files become the output folder, and
the rest of KDFlow's save_path is kept beside them in <output>/kdflow/. A LoRA run (lora_rank > 0)
saves adapters; they are merged into the student so the output loads as a plain HF checkpoint.

Ray: the job's first host (SLURM_JOB_NODELIST, see slurm_env) runs `ray start --head
--node-ip-address <its IP>` (Ray wants an address, not a host name: the name is resolved, loopback
addresses skipped; MOTAB_RAY_HEAD_IP overrides); every other node joins it through `srun --nodes=1
--ntasks=1 --overlap --nodelist=<host> ray start --address <IP>:<port> --block`. KDFlow then runs
on the head with --num_nodes/--num_gpus_per_node of the allocation, writing into `.<output>.tmp`
(renamed when done). The command is kept in the output as kdflow_command.sh, to rerun by hand.
Never run here (no GPUs, no SGLang): `--dry-run` only writes the script and prints the commands.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

from motab.commandline import command_parser
from motab.jobenv import child_env
from motab.jsonio import write_json
from motab.passthrough import merge_options
from motab.training.slurm_env import expand_hostlist

ENTRY = ("python", "-m", "kdflow.cli.train_kd_on_policy")
VARIANTS = {
    "rkl": {"kd_algorithm": "vanilla_kd", "kd_loss_fn": "rkl"},
    "akl": {"kd_algorithm": "vanilla_kd", "kd_loss_fn": "akl"},
    "dskd": {"kd_algorithm": "dskd", "kd_loss_fn": "rkl"},
}
# run_onpolicy_kd.sh / _akl.sh / _dskd.sh (wangbing1416/MOTAB 415a5f0): flags every variant passes,
# by KDFlow's own names; config may set any of them.
SCRIPT_FLAGS = {
    "train_batch_size": 16,
    "micro_train_batch_size": 1,
    "learning_rate": 2e-6,
    "lr_warmup_ratio": 0.05,
    "num_epochs": 10,
    "save_steps": 100,
    "bf16": True,
    "gradient_checkpointing": True,
    "enable_sleep": True,
    "use_liger_kernel": True,
    "enable_thinking": True,
    "rollout_tp_size": 1,
    "rollout_batch_size": 32,
    "rollout_mem_fraction_static": 0.5,
    "n_samples_per_prompt": 5,
    "generate_max_len": 32768,
    "temperature": 0.6,
    "top_p": 0.95,
    "input_key": "messages",
    "apply_chat_template": True,
    "max_len": 32768,
    "prompt_max_len": 2048,
    "preprocess_num_workers": 32,
    "kd_ratio": 1.0,
    "teacher_tp_size": 1,
    "teacher_mem_fraction_static": 0.5,
    "logging_steps": 10,
}
DSKD_FLAGS = {"dskd_topk_vocab": -1, "dskd_projector_lr": 1e-4}  # _dskd.sh only
# config keys that are not KDFlow flags of the same name (or have no script value)
OWN_KEYS = {
    "engine": None,
    "loss": None,
    "akl_mu": 0.5,
    "seed": 42,
    "use_dynamic_bsz": False,
    "max_token_len_per_gpu": 8192,
    "lora_rank": 0,
    "lora_alpha": None,
    "dskd_token_align": None,
    "checkpoint_epoch": None,
    "kdflow": None,
}
# flags the pipeline decides (files, nodes, GPUs); a recipe's `kdflow:` block may set any other
OWNED_FLAGS = (
    "num_nodes",
    "num_gpus_per_node",
    "save_path",
    "student_name_or_path",
    "teacher_name_or_path",
    "rollout_num_engines",
    "train_dataset_path",
    "teacher_dp_size",
)
MAX_TOKENS_PER_GPU = 8192
RAY_PORT = 6379
WEIGHTS = re.compile(r"^(model|pytorch_model|adapter_model)(-\d+-of-\d+)?\.(safetensors|bin)$")


def _flag(value) -> str:
    return str(value) if not isinstance(value, bool) else ("True" if value else "False")


def settings(cfg: dict) -> dict:
    """The kd block with every unset key at the scripts' value; unknown keys are an error."""
    unknown = sorted(set(cfg) - set(SCRIPT_FLAGS) - set(DSKD_FLAGS) - set(OWN_KEYS))
    if unknown:
        raise ValueError(
            f"kd engine kdflow: unknown keys {unknown} (KDFlow flags known here: "
            f"{sorted(SCRIPT_FLAGS | DSKD_FLAGS)}, and {sorted(OWN_KEYS)})"
        )
    if cfg.get("loss") not in VARIANTS:
        raise ValueError(f"kd engine kdflow: loss must be one of {sorted(VARIANTS)}, found {cfg.get('loss')!r}")
    c = SCRIPT_FLAGS | DSKD_FLAGS | OWN_KEYS | cfg
    if c["use_dynamic_bsz"] and not 0 < c["max_token_len_per_gpu"] <= MAX_TOKENS_PER_GPU:
        raise ValueError(
            f"kd engine kdflow: max_token_len_per_gpu must lie in 1..{MAX_TOKENS_PER_GPU}, "
            f"found {c['max_token_len_per_gpu']}"
        )
    if c["checkpoint_epoch"] is not None and not 1 <= c["checkpoint_epoch"] <= c["num_epochs"]:
        raise ValueError(
            f"kd engine kdflow: checkpoint_epoch must lie in 1..num_epochs ({c['num_epochs']}), "
            f"found {c['checkpoint_epoch']}"
        )
    return c


def kdflow_argv(
    cfg: dict, *, student: str, teacher: str, prompts: str, save_path: str, nodes: int, gpus_per_node: int
) -> list[str]:
    """KDFlow's on-policy command line for a kd config block (engine kdflow)."""
    c = settings(cfg)
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError(f"kdflow needs at least one node and one GPU, found {nodes} x {gpus_per_node}")
    gpus = nodes * gpus_per_node
    if gpus % c["teacher_tp_size"]:
        raise ValueError(f"kd engine kdflow: teacher_tp_size {c['teacher_tp_size']} does not divide the {gpus} GPUs")
    flags = {
        "num_nodes": nodes,
        "num_gpus_per_node": gpus_per_node,
        "backend": "fsdp2",
        "seed": c["seed"],
        "save_path": save_path,
        "student_name_or_path": student,
        "teacher_name_or_path": teacher,
        "rollout_num_engines": gpus,
        "train_dataset_path": prompts,
    }
    flags |= {key: c[key] for key in SCRIPT_FLAGS}
    if c["use_dynamic_bsz"]:
        flags |= {"use_dynamic_bsz": True, "max_token_len_per_gpu": c["max_token_len_per_gpu"]}
    flags |= VARIANTS[c["loss"]] | {"teacher_dp_size": gpus // c["teacher_tp_size"]}
    if c["loss"] == "akl":
        flags["adaptive_alpha"] = c["akl_mu"]
    if c["loss"] == "dskd":
        flags |= {key: c[key] for key in DSKD_FLAGS}
        if c["dskd_token_align"] is not None:
            flags["dskd_token_align"] = c["dskd_token_align"]
    if c["lora_rank"]:
        flags |= {"lora_rank": c["lora_rank"], "lora_alpha": c["lora_alpha"] or 2 * c["lora_rank"]}
    # the recipe's `kdflow:` options: any KDFlow flag by its own name, passed unchanged
    flags = merge_options(flags, c["kdflow"], OWNED_FLAGS, "kd.<recipe>.kdflow")
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


def host_ip(host: str, env: dict | None = None, resolve=socket.getaddrinfo) -> str:
    """The IPv4 address Ray's head listens on: MOTAB_RAY_HEAD_IP, else `host` if it is an address,
    else the first non-loopback address `host` resolves to (a hostname's own /etc/hosts entry is
    often 127.0.1.1, which the other nodes cannot reach)."""
    if (env or {}).get("MOTAB_RAY_HEAD_IP"):
        return env["MOTAB_RAY_HEAD_IP"]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        found = [info[4][0] for info in resolve(host, None, socket.AF_INET)]
    except OSError as exc:
        raise ValueError(f"Ray head {host!r}: cannot resolve its address ({exc}); set MOTAB_RAY_HEAD_IP") from exc
    usable = [address for address in found if not ipaddress.ip_address(address).is_loopback]
    if not usable:
        raise ValueError(
            f"Ray head {host!r} resolves only to loopback addresses {sorted(set(found))}, which the "
            "other nodes cannot reach; set MOTAB_RAY_HEAD_IP to its cluster address"
        )
    return usable[0]


def ray_commands(hosts: list[str], gpus_per_node: int, head_ip: str, port: int = RAY_PORT) -> list[list[str]]:
    """Ray head on hosts[0] (at head_ip), one worker per other host (through srun), each with its GPUs."""
    commands = [
        [
            "ray",
            "start",
            "--head",
            f"--node-ip-address={head_ip}",
            f"--port={port}",
            f"--num-gpus={gpus_per_node}",
            "--disable-usage-stats",
        ]
    ]
    for host in hosts[1:]:
        commands.append(
            [
                "srun",
                "--nodes=1",
                "--ntasks=1",
                "--overlap",
                f"--nodelist={host}",
                "ray",
                "start",
                f"--address={head_ip}:{port}",
                f"--num-gpus={gpus_per_node}",
                "--block",
                "--disable-usage-stats",
            ]
        )
    return commands


def is_checkpoint(folder: Path) -> bool:
    """A folder HF (or PEFT, for an adapter) can load: a config and weight files."""
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    has_config = "config.json" in names or "adapter_config.json" in names
    return has_config and any(WEIGHTS.match(n) or n.endswith(".safetensors.index.json") for n in names)


def epoch_checkpoint(save_path: Path, epoch: int) -> Path:
    """KDFlow's checkpoint after `epoch` (save_path/epoch_N), or an error saying what is there."""
    folder = save_path / f"epoch_{epoch}"
    if not is_checkpoint(folder):
        there = sorted(p.name for p in save_path.iterdir()) if save_path.is_dir() else []
        raise FileNotFoundError(
            f"KDFlow left no loadable checkpoint at {folder} (config.json and weights); {save_path} holds {there}"
        )
    return folder


def merge_adapter(student: str, adapter: Path, out: Path) -> None:
    """Merge KDFlow's LoRA adapter into the student and save a plain HF checkpoint to `out`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(student), str(adapter))
    model.merge_and_unload().save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(
        str(adapter) if (adapter / "tokenizer_config.json").is_file() else student
    ).save_pretrained(str(out))


def collect_checkpoint(work: Path, epoch: int, student: str) -> dict:
    """Make `work` the checkpoint of `epoch`: its files at the top, the rest of KDFlow's save_path
    (work/kdflow: other epochs, rollout_data) left where it is."""
    chosen = epoch_checkpoint(work / "kdflow", epoch)
    if (chosen / "adapter_config.json").is_file():
        merge_adapter(student, chosen, work)
        how = "merged LoRA adapter"
    else:
        for item in sorted(chosen.iterdir()):
            os.replace(item, work / item.name)
        chosen.rmdir()
        how = "moved"
    return {"epoch": epoch, "from": f"kdflow/epoch_{epoch}", "how": how}


def parser():
    p = command_parser(
        "kdflow",
        __doc__,
        'motab kdflow --student Qwen/Qwen3-1.7B --teacher Qwen/Qwen3-8B --prompts results/toy/kd_data/toy.jsonl --output ckpt/kd --params-json \'{"engine": "kdflow"}\' --dry-run',
    )
    p.add_argument("--student", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--prompts", required=True, help="KDFlow prompt JSONL ({id, messages, ...})")
    p.add_argument("--output", required=True)
    p.add_argument("--params-json", required=True, help="the kd block of config (engine kdflow)")
    p.add_argument("--dry-run", action="store_true", help="write kdflow_command.sh and print the commands only")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    cfg = json.loads(args.params_json)
    env = dict(os.environ)
    hosts, gpus = allocation(env)
    output = Path(args.output)
    work = output.with_name(f".{output.name}.tmp")
    save_path = work / "kdflow"
    command = kdflow_argv(
        cfg,
        student=args.student,
        teacher=args.teacher,
        prompts=args.prompts,
        save_path=str(save_path),
        nodes=len(hosts),
        gpus_per_node=gpus,
    )
    ray = ray_commands(hosts, gpus, host_ip(hosts[0], env))
    script = "\n".join(
        [
            "#!/bin/bash",
            "set -euo pipefail",
            *(shlex.join(c) + (" &" if "--block" in c else "") for c in ray),
            shlex.join(command),
            "ray stop",
            "",
        ]
    )
    shutil.rmtree(work, ignore_errors=True)  # a killed run's leftovers (KDFlow cannot resume them)
    work.mkdir(parents=True)
    (work / "kdflow_command.sh").write_text(script, encoding="utf-8")
    print(script)
    if args.dry_run:
        return 0
    workers = []
    env = child_env()  # `ray` and `python` of this environment, also for srun's workers (it exports PATH)
    try:
        subprocess.run(ray[0], check=True, env=env)
        workers = [subprocess.Popen(c, env=env) for c in ray[1:]]
        time.sleep(10 if workers else 0)  # workers join the head
        subprocess.run(command, check=True, env=env)
    finally:
        subprocess.run(["ray", "stop"], check=False, env=env)
        for worker in workers:
            worker.terminate()
    c = settings(cfg)
    record = collect_checkpoint(work, c["checkpoint_epoch"] or c["num_epochs"], args.student)
    write_json(work / "kdflow_run.json", {"checkpoint": record, "params": cfg, "command": command})
    shutil.rmtree(output, ignore_errors=True)
    os.replace(work, output)
    return 0
