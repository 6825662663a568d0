"""SFT through LLaMA-Factory: write its YAML from config, run `llamafactory-cli train`.

The YAML is kept in the finished checkpoint folder (llamafactory_train.yaml), so the stage can
be rerun by hand with LLaMA-Factory's own CLI. Training writes into `.<name>.tmp` beside the
output; the folder is renamed only when training (and, for LoRA, the merge) has finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from motab.jsonio import write_json
from motab.provenance import provenance

# Config keys passed through to LLaMA-Factory unchanged (they are its own argument names).
PASS_THROUGH = ("finetuning_type", "cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps",
                "learning_rate", "num_train_epochs", "lr_scheduler_type", "warmup_ratio", "seed", "deepspeed",
                "lora_rank", "lora_alpha", "lora_target")


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
        "overwrite_output_dir": True,
        "overwrite_cache": True,
        "logging_steps": 10,
        "save_strategy": "no",
        "report_to": "none",
        "plot_loss": False,
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "bf16": not cpu,
    }
    args |= {key: params[key] for key in PASS_THROUGH if key in params}
    if args["lr_scheduler_type"] == "cosine_with_min_lr":
        args.setdefault("lr_scheduler_kwargs", {"min_lr_rate": params.get("min_lr_rate", 0.1)})
    if params["finetuning_type"] == "lora":
        args.setdefault("lora_target", "all")
    return args


def export_args(model: str, adapter_dir: str, export_dir: str, template: str) -> dict:
    """Arguments for `llamafactory-cli export`: merge a LoRA adapter into a loadable checkpoint."""
    return {"model_name_or_path": model, "adapter_name_or_path": adapter_dir, "template": template,
            "finetuning_type": "lora", "export_dir": export_dir, "export_size": 5, "export_legacy_format": False}


def llamafactory_cli() -> list[str]:
    """`llamafactory-cli` of the running environment (the venv's, not whatever is on PATH)."""
    beside = Path(sys.executable).with_name("llamafactory-cli")
    return [str(beside)] if beside.exists() else ["llamafactory-cli"]


def run_cli(command: str, config_path: Path, env: dict) -> None:
    argv = llamafactory_cli() + [command, str(config_path)]
    print("running:", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, env=env)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="motab sft", description=__doc__)
    parser.add_argument("--model", required=True, help="start checkpoint (folder or hub id)")
    parser.add_argument("--dataset-dir", required=True, help="folder holding dataset_info.json")
    parser.add_argument("--dataset", required=True, help="dataset name in dataset_info.json")
    parser.add_argument("--output", required=True)
    parser.add_argument("--params-json", required=True, help="the study's sft block from config")
    args = parser.parse_args(argv)

    import torch

    params = json.loads(args.params_json)
    output = Path(args.output)
    work = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cpu = not torch.cuda.is_available()
    env = dict(os.environ, DISABLE_VERSION_CHECK="1")
    lora = params["finetuning_type"] == "lora"
    trained = work / "adapter" if lora else work
    train_cfg = train_args(args.model, args.dataset_dir, args.dataset, str(trained), params, cpu)
    start = time.time()
    config_path = work / "llamafactory_train.yaml"
    config_path.write_text(yaml.safe_dump(train_cfg, sort_keys=True))
    run_cli("train", config_path, env)
    if lora:
        export_path = work / "llamafactory_export.yaml"
        export_path.write_text(yaml.safe_dump(export_args(args.model, str(trained), str(work),
                                                          train_cfg["template"]), sort_keys=True))
        run_cli("export", export_path, env)
    write_json(work / "sft_run.json", {"args": vars(args) | {"params_json": params},
                                       "seconds": round(time.time() - start, 1),
                                       "provenance": provenance(params)})
    shutil.rmtree(output, ignore_errors=True)
    os.replace(work, output)
    print(f"SFT finished in {time.time() - start:.0f}s -> {output}")
    return 0
