"""Pass-through blocks: `sft.llamafactory`, a KDFlow recipe's `kdflow` and a study's `sglang` reach
the tools' own config file / command line unchanged; the schema checks types, not names; the keys
the pipeline decides are refused by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from motab.passthrough import cli_flags, extend_command, merge_options
from motab.training.kdflow import kdflow_argv
from motab.training.sft import train_args

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SFT = {
    "finetuning_type": "full",
    "cutoff_len": 64,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-4,
    "num_train_epochs": 1,
    "lr_scheduler_type": "cosine",
    "seed": 0,
    "template": "qwen3",
}


def test_llamafactory_options_reach_its_own_argument_parser(tmp_path):
    """The YAML the sft job writes, read back by LLaMA-Factory's own parser (get_train_args)."""
    from llamafactory.hparams import get_train_args

    params = SFT | {
        "llamafactory": {
            "report_to": "tensorboard",
            "flash_attn": "sdpa",
            "enable_liger_kernel": False,
            "packing": True,
            "preprocessing_num_workers": 2,
        }
    }
    args = train_args(str(tmp_path / "model"), str(tmp_path), "ds", str(tmp_path / "out"), params, cpu=True)
    written = yaml.safe_load(yaml.safe_dump(args, sort_keys=True))  # as llamafactory_train.yaml holds it
    model_args, data_args, training_args, _finetuning, _generating = get_train_args(written)
    assert model_args.flash_attn == "sdpa" and model_args.enable_liger_kernel is False
    assert training_args.report_to == ["tensorboard"]  # over the pipeline's default "none"
    assert data_args.packing is True and data_args.preprocessing_num_workers == 2 and data_args.template == "qwen3"


def test_the_pipelines_own_llamafactory_keys_are_refused():
    with pytest.raises(ValueError, match=r"sft.llamafactory: dataset, output_dir are set by the pipeline"):
        train_args("m", "d", "ds", "out", SFT | {"llamafactory": {"output_dir": "x", "dataset": "y"}}, cpu=True)


def test_kdflow_options_reach_its_command_line():
    argv = kdflow_argv(
        {"engine": "kdflow", "loss": "rkl", "kdflow": {"wandb_project": "motab", "save_steps": 50, "use_wandb": True}},
        student="s",
        teacher="t",
        prompts="p.jsonl",
        save_path="out",
        nodes=1,
        gpus_per_node=8,
    )
    joined = " ".join(argv)
    assert "--wandb_project motab" in joined and "--use_wandb True" in joined
    assert joined.count("--save_steps") == 1 and "--save_steps 50" in joined  # replaces the script's 100
    with pytest.raises(ValueError, match="save_path is set by the pipeline"):
        kdflow_argv(
            {"engine": "kdflow", "loss": "rkl", "kdflow": {"save_path": "elsewhere"}},
            student="s",
            teacher="t",
            prompts="p",
            save_path="out",
            nodes=1,
            gpus_per_node=8,
        )


def test_sglang_flags_spelled_as_sglang_spells_them():
    assert cli_flags(
        {"chunked_prefill_size": 8192, "enable_metrics": True, "disable_radix_cache": False, "cuda_graph_bs": [1, 2, 4]}
    ) == ["--chunked-prefill-size", "8192", "--enable-metrics", "--cuda-graph-bs", "1", "2", "4"]
    template = "python -m sglang.launch_server --model-path {model} --tp-size {tp}"
    assert extend_command(template, {"context_length": 40960}, "s") == template + " --context-length 40960"
    with pytest.raises(ValueError, match="--tp-size already in the server command"):
        extend_command(template, {"tp_size": 8}, "studies.x.sglang")
    assert merge_options({"a": 1}, None, (), "w") == {"a": 1}


def test_sglang_block_reaches_every_server_command_of_the_plan(tmp_path):
    override = tmp_path / "sglang.yaml"
    override.write_text(
        "studies:\n  cotfilter:\n    sglang: {chunked_prefill_size: 8192, enable_metrics: true}\n"
        "    sft:\n      llamafactory: {report_to: wandb, flash_attn: fa2}\n"
    )
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-n",
            "-p",
            "--profile",
            "profiles/slurm",
            "all",
            "--configfile",
            "config.yaml",
            str(override),
            "--config",
            "select=[cotfilter]",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    servers = [line for line in proc.stdout.splitlines() if "sglang.launch_server" in line]
    assert servers and all("--chunked-prefill-size 8192 --enable-metrics" in line for line in servers)
    # the sft block (with its pass-through) is the job's --params-json, which becomes the YAML above
    sft = [line for line in proc.stdout.splitlines() if "motab sft --model" in line]
    assert sft and all('"llamafactory":{"flash_attn":"fa2","report_to":"wandb"}' in line for line in sft)


def test_schema_checks_types_not_names(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies:\n  cotfilter:\n    sglang: {chunked_prefill_size: {nested: 1}}\n")
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--configfile", "config.yaml", str(bad), "--config", "select=[cotfilter]"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    message = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "studies.cotfilter.sglang.chunked_prefill_size: expected string or number or boolean or array, "
        "found {'nested': 1}" in message
    )
