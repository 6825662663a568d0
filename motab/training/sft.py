"""SFT through LLaMA-Factory: write its YAML from config, run `llamafactory-cli train`.

The YAML is kept in the finished checkpoint folder (llamafactory_train.yaml), so the stage can
be rerun by hand with LLaMA-Factory's own CLI. Training writes into `.<name>.tmp` beside the
output; the folder is renamed only when training (and, for LoRA, the merge) has finished.

Resume: with `save_steps` in config, LLaMA-Factory saves <tmp>/checkpoint-N every N steps. A rerun
that finds the `.tmp` folder of a killed run resumes from its newest checkpoint where the resume key
matches and the checkpoint holds the full training state, and refuses otherwise (sft_resume.py;
docs/resume.md). The checkpoint-N folders
are removed from the finished output, except with `save_strategy: epoch` (the MOTAB release's):
then the one saved at the end of epoch k stays as <output>/epoch<k> (keep_epoch_checkpoints; for
LoRA its adapter merged like the final one), the checkpoint a run's `eval_epochs` evaluates.

Training log: LLaMA-Factory's trainer_log.jsonl (one entry per logging_steps) becomes
training_log.csv (`step,loss`) in the output; entries logged twice (steps between the last save
and a kill, rerun after the resume) keep the rerun's value.

Config keys are LLaMA-Factory's own names (PASS_THROUGH), plus `template` (default `qwen`, which
adds Qwen2.5's default system prompt; the opd study uses `qwen3`, no system prompt, the same tokens
as Qwen3's chat template that renders the rollout and eval prompts). Tinker's recipe (opd study):
lora_alpha 32 at rank 128, lora_target listing lm_head (LLaMA-Factory's `all` leaves the
unembedding out), adam_beta2 0.95, max_grad_norm 0 (no clipping). The LoRA adapter stays in
<output>/adapter beside the merged weights: on-policy training can continue it (kd `lora_init`).

Multi-node: in a SLURM job each node runs this command once (srun --ntasks-per-node=1); the
torchrun variables come from motab.training.slurm_env; only node 0 writes and renames folders.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

from motab.children import die_with_snakemake, job_lock, run_child
from motab.commandline import command_parser
from motab.jobenv import announce_gpus, child_env, thread_env, tool
from motab.jsonio import write_json
from motab.passthrough import merge_options
from motab.provenance import provenance
from motab.settings_file import check_settings, read_settings
from motab.training import lf_train, sft_preprocess
from motab.training.sft_resume import CHECKPOINT, latest_checkpoint, prepare_work, sft_key
from motab.training.slurm_env import torchrun_env

LOG_FILE = "training_log.csv"

# Config keys passed through to LLaMA-Factory unchanged (they are its own argument names).
PASS_THROUGH = (
    "finetuning_type",
    "cutoff_len",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "num_train_epochs",
    "lr_scheduler_type",
    "warmup_ratio",
    "seed",
    "deepspeed",
    "lora_rank",
    "lora_alpha",
    "lora_target",
    "logging_steps",
    "adam_beta2",
    "max_grad_norm",
)
# --- motab study: the keys of the MOTAB release's SFT/sft_config.yaml that the block above
# lacks; `save_strategy: epoch` keeps a checkpoint per epoch (epoch<k>/ in the output, EPOCH_DIR)
PASS_THROUGH += (
    "enable_liger_kernel",
    "flash_attn",
    "ddp_timeout",
    "packing",
    "preprocessing_num_workers",
    "save_strategy",
    "save_only_model",
    "plot_loss",
    "adam_beta1",
    "adam_epsilon",
    "weight_decay",
    "lr_scheduler_kwargs",
    "bf16",
)
EPOCH_DIR = "epoch"
# what a finished epoch folder drops: optimizer and RNG states serve only a resume of the training
_RESUME_ONLY = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", "global_step*", "zero_to_fp32.py", "latest")
# --- end motab study


# LLaMA-Factory keys the pipeline decides (the files of the DAG); `llamafactory:` may set any other
OWNED = ("model_name_or_path", "stage", "do_train", "dataset", "dataset_dir", "output_dir", "overwrite_output_dir")


def train_args(model: str, dataset_dir: str, dataset: str, output_dir: str, params: dict, cpu: bool) -> dict:
    """The LLaMA-Factory training arguments for one SFT run."""
    args = {
        "model_name_or_path": model,
        "stage": "sft",
        "do_train": True,
        "dataset": dataset,
        "dataset_dir": dataset_dir,
        "template": params.get("template", "qwen"),
        "output_dir": output_dir,
        # False: a resumed run keeps trainer_log.jsonl (True deletes it); the folder is always
        # new or a killed run's, never a finished checkpoint
        "overwrite_output_dir": False,
        "logging_steps": 10,
        "save_strategy": "steps" if params.get("save_steps") else "no",
        "report_to": "none",
        "plot_loss": False,
        # workers, cache and ddp_timeout sized to the data (motab.training.sft_preprocess)
        **sft_preprocess.for_dataset(dataset_dir, dataset),
        "dataloader_num_workers": 0,
        "bf16": not cpu,
    }
    if params.get("save_steps"):
        args |= {"save_steps": params["save_steps"], "save_total_limit": 1, "save_only_model": False}
    args |= {key: params[key] for key in PASS_THROUGH if key in params}
    if cpu:
        args["bf16"] = False  # bf16 (the release's) needs a GPU; the toy trains in fp32 on CPU
    if args["lr_scheduler_type"] == "cosine_with_min_lr":
        args.setdefault("lr_scheduler_kwargs", {"min_lr_rate": params.get("min_lr_rate", 0.1)})
    if params["finetuning_type"] == "lora":
        args.setdefault("lora_target", "all")
    # the sft block's `llamafactory:` options reach the YAML unchanged (report_to, flash_attn,
    # enable_liger_kernel, packing, ...), over the defaults above
    return merge_options(args, params.get("llamafactory"), OWNED, "sft.llamafactory")


def train_yaml(train_cfg: dict) -> str:
    """The training YAML as written into the checkpoint folder (llamafactory_train.yaml)."""
    return yaml.safe_dump(train_cfg, sort_keys=True)


def export_args(model: str, adapter_dir: str, export_dir: str, template: str) -> dict:
    """Arguments for `llamafactory-cli export`: merge a LoRA adapter into a loadable checkpoint."""
    return {
        "model_name_or_path": model,
        "adapter_name_or_path": adapter_dir,
        "template": template,
        "finetuning_type": "lora",
        "export_dir": export_dir,
        "export_size": 5,
        "export_legacy_format": False,
    }


def llamafactory_cli() -> list[str]:
    """`llamafactory-cli` of the running environment (the venv's, not whatever is on PATH)."""
    return [tool("llamafactory-cli")]


def launch_env(environ: dict[str, str], visible_gpus: int) -> dict[str, str]:
    """The environment `llamafactory-cli` runs in: this environment's `bin/` first on PATH (it calls
    `torchrun` by name), the torchrun variables of a SLURM job of several processes (none for one
    process: a CPU-only or one-GPU job trains in LLaMA-Factory's own process), and each process's
    share of the job's CPUs as its thread count."""
    launch = torchrun_env(environ, visible_gpus)
    processes = int(launch.get("NPROC_PER_NODE", "1"))
    return child_env(environ) | {"DISABLE_VERSION_CHECK": "1"} | thread_env(environ, processes) | launch


def run_cli(
    command: str, config_path: Path, env: dict, checkpoints: Path | None = None, lock: tuple[int, ...] = ()
) -> None:
    """LLaMA-Factory's `command` on the YAML, as a child that dies with this job (motab.children);
    training through lf_train, which saves a checkpoint when the job is told to stop."""
    if command == "train":
        argv = [sys.executable, "-m", lf_train.__name__, str(config_path)]
    else:
        argv = llamafactory_cli() + [command, str(config_path)]
    print("running:", " ".join(argv), flush=True)
    code, received = run_child(argv, env, pass_fds=lock)
    if received is not None:
        saved = latest_checkpoint(checkpoints) if checkpoints else None
        where = f"its state is saved in {saved}" if saved else "no checkpoint was saved"
        raise SystemExit(f"{signal.Signals(received).name}: LLaMA-Factory {command} stopped; {where}; rerun to resume")
    if code != 0:
        raise SystemExit(f"llamafactory-cli {command} {config_path} failed with exit code {code} (its log is above)")


def trainer_log_to_csv(jsonl: Path) -> str:
    """LLaMA-Factory's trainer_log.jsonl -> training_log.csv text: `step,loss`, sorted by step.

    Entries without a loss (e.g. the final summary) are skipped; a step logged twice keeps its last
    entry (the resumed run's). Losses are written with 6 decimals.
    """
    losses: dict[int, float] = {}
    for number, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{jsonl}:{number}: not JSON ({exc})") from exc
        if entry.get("loss") is None:
            continue
        if not isinstance(entry.get("current_steps"), int):
            raise ValueError(
                f"{jsonl}:{number}: current_steps should be an integer, found {entry.get('current_steps')!r}"
            )
        losses[entry["current_steps"]] = float(entry["loss"])
    return "step,loss\n" + "".join(f"{step},{loss:.6f}\n" for step, loss in sorted(losses.items()))


def keep_epoch_checkpoints(folder: Path) -> list[Path]:
    """Rename each <folder>/checkpoint-N saved at the end of an epoch to <folder>/epoch<k>.

    k is the epoch in its trainer_state.json (LLaMA-Factory's `save_strategy: epoch`). Each epoch
    folder gets the tokenizer and generation files of the final model where it lacks them (so the
    eval server loads it alone) and loses the optimizer and RNG states (resume only)."""
    kept = []
    for step, checkpoint in sorted(
        (int(p.name[len(CHECKPOINT) :]), p)
        for p in folder.glob(CHECKPOINT + "*")
        if p.name[len(CHECKPOINT) :].isdigit()
    ):
        state_file = checkpoint / "trainer_state.json"
        if not state_file.is_file():
            raise ValueError(f"{state_file}: missing; cannot tell which epoch checkpoint-{step} is")
        epoch = json.loads(state_file.read_text())["epoch"]
        if abs(epoch - round(epoch)) > 1e-3:
            continue  # a save that is not at an epoch's end (e.g. a final partial epoch)
        target = folder / f"{EPOCH_DIR}{round(epoch)}"
        if target.exists():
            raise ValueError(f"{checkpoint}: epoch {epoch} was already saved as {target}")
        os.replace(checkpoint, target)
        for pattern in _RESUME_ONLY:
            for path in target.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for path in folder.iterdir():
            if (
                path.is_file()
                and (
                    path.name.startswith(
                        (
                            "tokenizer",
                            "special_tokens",
                            "vocab",
                            "merges",
                            "added_tokens",
                            "chat_template",
                            "generation_config",
                        )
                    )
                )
                and not (target / path.name).exists()
            ):
                shutil.copy2(path, target / path.name)
        kept.append(target)
    return kept


def _run_export(model: str, adapter_dir: Path, export_dir: Path, template: str, export_path: Path, env: dict) -> None:
    """Merge one LoRA adapter into loadable weights (`llamafactory-cli export`), its YAML kept at export_path."""
    export_path.write_text(
        yaml.safe_dump(export_args(model, str(adapter_dir), str(export_dir), template), sort_keys=True)
    )
    run_cli("export", export_path, env)


def _keep_epochs(model: str, trained: Path, work: Path, train_cfg: dict, lora: bool, env: dict) -> None:
    """With save_strategy epoch: keep each epoch's checkpoint (for LoRA, merged as the final one is)."""
    if train_cfg.get("save_strategy") == "epoch":
        for epoch_dir in keep_epoch_checkpoints(Path(trained)):
            if lora:  # each epoch's adapter merged into loadable weights, as the final one is
                export_path = work / f"llamafactory_export_{epoch_dir.name}.yaml"
                _run_export(model, epoch_dir, work / epoch_dir.name, train_cfg["template"], export_path, env)


def _write_records(
    work: Path, trained: Path, args: argparse.Namespace, params: dict, start: float, resume: Path | None
) -> None:
    """The training log as CSV and sft_run.json (arguments, seconds, resume point, provenance)."""
    (work / LOG_FILE).write_text(trainer_log_to_csv(Path(trained) / "trainer_log.jsonl"), encoding="utf-8")
    write_json(
        work / "sft_run.json",
        {
            "args": vars(args) | {"params_json": params},
            "seconds": round(time.time() - start, 1),
            "resumed_from": resume.name if resume is not None else None,
            "provenance": provenance(params),
        },
    )


def main(argv: list[str]) -> int:
    parser = command_parser(
        "sft",
        __doc__,
        "motab sft --model results/toy/models/toy-student --dataset-dir results/toy/sft_data/motab --dataset motab --config sft.yaml --output ckpt/sft_motab",
    )
    parser.add_argument("--model", required=True, help="start checkpoint (folder or hub id)")
    parser.add_argument("--dataset-dir", required=True, help="folder holding dataset_info.json")
    parser.add_argument("--dataset", required=True, help="dataset name in dataset_info.json")
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--config", help="YAML or JSON file of the sft settings (the keys of a study's sft block in config.yaml)"
    )
    parser.add_argument("--params-json", help="the same as a JSON object, over --config's keys (what the rules pass)")
    args = parser.parse_args(argv)
    params = read_settings(args.config, args.params_json, "sft")
    if args.config:
        check_settings(params, "sft", args.config)
    die_with_snakemake()  # a SIGKILLed Snakemake leaves no training behind (motab.children)

    import torch

    output = Path(args.output)
    work = output.with_name(f".{output.name}.tmp")
    cpu = not torch.cuda.is_available()
    announce_gpus(torch.cuda.device_count())
    env = launch_env(dict(os.environ), torch.cuda.device_count())
    leader = env.get("NODE_RANK", "0") == "0"
    lora = params["finetuning_type"] == "lora"
    trained = work / "adapter" if lora else work
    train_cfg = train_args(args.model, args.dataset_dir, args.dataset, str(trained), params, cpu)
    start = time.time()
    config_path = work / "llamafactory_train.yaml"
    if params.get("save_minutes"):  # lf_train saves a checkpoint this often, and on a stop signal
        env[lf_train.SAVE_MINUTES] = str(params["save_minutes"])
    # held until the end, by LLaMA-Factory too; node 0 only (a lock on a shared folder would hold the others back)
    with job_lock(output.with_name(f".{output.name}.lock")) if leader else contextlib.nullcontext() as held:
        lock = (held.fileno(),) if held else ()
        processes = int(env.get("NNODES", "1")) * int(env.get("NPROC_PER_NODE", "1"))
        resume = prepare_work(work, trained, sft_key(train_cfg, args.model, args.dataset_dir, processes), leader)
        # other nodes keep their copy of the YAML off the shared folder, which node 0 owns
        launch_path = config_path if leader else Path(tempfile.mkdtemp()) / config_path.name
        launch_path.write_text(train_yaml(train_cfg | ({"resume_from_checkpoint": str(resume)} if resume else {})))
        run_cli("train", launch_path, env, checkpoints=trained, lock=lock)
        if not leader:
            return 0
        if lora:
            _run_export(args.model, trained, work, train_cfg["template"], work / "llamafactory_export.yaml", env)
        config_path.write_text(train_yaml(train_cfg))  # the YAML that reruns it by hand
        _keep_epochs(args.model, trained, work, train_cfg, lora, env)
        for folder in Path(trained).glob(CHECKPOINT + "*"):
            shutil.rmtree(folder)
        _write_records(work, trained, args, params, start, resume)
        shutil.rmtree(output, ignore_errors=True)
        os.replace(work, output)
    print(f"SFT finished in {time.time() - start:.0f}s -> {output}")
    return 0
