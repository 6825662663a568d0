"""SFT through the real `llamafactory-cli train` on a tiny Qwen3 (CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from motab.jsonio import write_jsonl
from motab.training.sft import export_args, train_args, trainer_log_to_csv
from motab.training.sft import main as sft_main

PARAMS = {
    "finetuning_type": "full",
    "cutoff_len": 128,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-3,
    "num_train_epochs": 1,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.0,
    "seed": 0,
}


def test_yaml_carries_every_config_value_and_cluster_settings():
    params = PARAMS | {
        "lr_scheduler_type": "cosine_with_min_lr",
        "deepspeed": "envs/deepspeed/ds_z3_config.json",
        "finetuning_type": "lora",
        "lora_rank": 64,
        "lora_alpha": 128,
    }
    args = train_args("Qwen/Qwen3-4B", "data", "teacher_only", "out", params, cpu=False)
    for key in (
        "cutoff_len",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "num_train_epochs",
        "deepspeed",
        "lora_rank",
        "lora_alpha",
        "seed",
    ):
        assert args[key] == params[key]
    assert args["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1}
    assert args["template"] == "qwen" and args["bf16"] is True and args["stage"] == "sft"
    assert export_args("m", "out/adapter", "out", "qwen")["adapter_name_or_path"] == "out/adapter"


def write_data(folder, n=32):
    write_jsonl(
        folder / "train.jsonl",
        [
            {"instruction": f"Compute {i} + 1.", "input": "", "output": f"The answer is \\boxed{{{i + 1}}}."}
            for i in range(n)
        ],
    )
    (folder / "dataset_info.json").write_text(
        json.dumps(
            {
                "toy": {
                    "file_name": "train.jsonl",
                    "columns": {"prompt": "instruction", "query": "input", "response": "output"},
                }
            }
        )
    )


def sft_argv(model, data_dir, output, params: dict) -> list[str]:
    """`motab sft`'s arguments for the toy dataset written by write_data."""
    args = [
        "--model",
        str(model),
        "--dataset-dir",
        str(data_dir),
        "--dataset",
        "toy",
        "--params-json",
        json.dumps(params),
    ]
    return args + (["--output", str(output)] if output is not None else [])


def test_trainer_log_becomes_step_loss_csv_and_a_resumed_step_keeps_its_rerun_value(tmp_path):
    log = tmp_path / "trainer_log.jsonl"
    entries = [
        {"current_steps": 1, "loss": 2.5},
        {"current_steps": 2, "loss": 2.25},
        {"current_steps": 2, "loss": 2.0},
        {"current_steps": 3, "total_steps": 3},
    ]  # rerun; summary
    log.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    assert trainer_log_to_csv(log) == "step,loss\n1,2.500000\n2,2.000000\n"
    log.write_text('{"current_steps": 1, "loss": 1.0}\nnot json\n')
    with pytest.raises(ValueError, match="trainer_log.jsonl:2"):
        trainer_log_to_csv(log)


def test_save_steps_turn_on_llamafactory_checkpoints():
    assert train_args("m", "d", "x", "o", PARAMS, cpu=True)["save_strategy"] == "no"
    args = train_args("m", "d", "x", "o", PARAMS | {"save_steps": 5}, cpu=True)
    assert (args["save_strategy"], args["save_steps"], args["save_total_limit"]) == ("steps", 5, 1)


@pytest.mark.slow
def test_llamafactory_full_sft_changes_the_weights(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    write_data(tmp_path / "data")
    out = tmp_path / "ckpt"
    assert sft_main(sft_argv(tiny_model_dir, tmp_path / "data", out, PARAMS)) == 0
    config = yaml.safe_load((out / "llamafactory_train.yaml").read_text())
    assert config["model_name_or_path"] == str(tiny_model_dir) and config["bf16"] is False
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = AutoModelForCausalLM.from_pretrained(out)
    diffs = [not torch.equal(a, b) for a, b in zip(base.state_dict().values(), tuned.state_dict().values())]
    assert sum(diffs) >= len(diffs) // 2
    assert not (tmp_path / ".ckpt.tmp").exists()


@pytest.mark.slow
def test_killed_sft_resumes_from_its_last_checkpoint(tiny_model_dir, tmp_path):
    """SIGKILL `motab sft` once LLaMA-Factory has saved checkpoint-4 (of 16 steps); the rerun resumes there."""
    from safetensors.torch import load_file

    write_data(tmp_path / "data", n=64)
    params = PARAMS | {"per_device_train_batch_size": 8, "num_train_epochs": 2, "save_steps": 4, "logging_steps": 1}
    argv = sft_argv(tiny_model_dir, tmp_path / "data", None, params)
    assert sft_main([*argv, "--output", str(tmp_path / "full")]) == 0

    out, work = tmp_path / "killed", tmp_path / ".killed.tmp"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "motab", "sft", *argv, "--output", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not (work / "checkpoint-4" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "sft ended or stalled before saving checkpoint-4"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and (work / "checkpoint-4").is_dir()

    assert sft_main([*argv, "--output", str(out)]) == 0
    record = json.loads((out / "sft_run.json").read_text())
    # checkpoint-4 or later: LLaMA-Factory, told to stop when its parent died, saved once more on its way out
    assert record["resumed_from"] in {f"checkpoint-{n}" for n in range(4, 16)}
    assert not work.exists() and not list(out.glob("checkpoint-*"))
    assert "resume_from_checkpoint" not in yaml.safe_load((out / "llamafactory_train.yaml").read_text())
    # the whole curve, one row per step, the same steps as the uninterrupted run's
    killed_log = (out / "training_log.csv").read_text().splitlines()
    full_log = (tmp_path / "full" / "training_log.csv").read_text().splitlines()
    assert killed_log[0] == "step,loss" and [r.split(",")[0] for r in killed_log[1:]] == [str(s) for s in range(1, 17)]
    assert [r.split(",")[0] for r in full_log] == [r.split(",")[0] for r in killed_log]
    full, resumed = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert full.keys() == resumed.keys()
    for key in full:
        torch_close(full[key], resumed[key], key)


def torch_close(a, b, key):
    import torch

    # HF Trainer restores weights, optimizer, scheduler, RNG and the data order, so on CPU the resumed
    # weights equal the uninterrupted run's up to float summation order
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
def test_sft_in_a_slurm_job_runs_torchrun_from_the_environment_not_from_path(tiny_model_dir, tmp_path):
    """A SLURM job runs `.venv/bin/python -m motab sft` with a bare PATH; with torchrun asked for
    (FORCE_TORCHRUN, as multi-GPU jobs do) llamafactory-cli calls `torchrun` by name and must find the
    venv's. Before the fix: FileNotFoundError: 'torchrun'."""
    write_data(tmp_path / "data", n=16)
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_GPUS_ON_NODE": "1",
        "SLURM_CPUS_PER_TASK": "1",
        "FORCE_TORCHRUN": "1",
        "NPROC_PER_NODE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "PATH": "/usr/bin:/bin",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")} | slurm
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = tmp_path / "ckpt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "motab",
            "sft",
            *sft_argv(tiny_model_dir, tmp_path / "data", out, PARAMS),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    assert f"launching: {torchrun} --nnodes 1" in proc.stdout + proc.stderr  # the environment's torchrun
    assert (out / "model.safetensors").is_file() and (out / "training_log.csv").is_file()


@pytest.mark.slow
def test_sft_from_a_settings_file_trains_with_llamafactory(tiny_model_dir, tmp_path):
    """`motab sft --config sft.yaml` (the keys of a study's sft block, for a run by hand): LLaMA-Factory
    trains from it, and the YAML it keeps is the one --params-json gives for the same settings."""
    write_data(tmp_path / "data")
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(PARAMS))
    argv = ["--model", str(tiny_model_dir), "--dataset-dir", str(tmp_path / "data"), "--dataset", "toy"]
    out = tmp_path / "ckpt"
    assert sft_main([*argv, "--config", str(tmp_path / "sft.yaml"), "--output", str(out)]) == 0
    kept = yaml.safe_load((out / "llamafactory_train.yaml").read_text())
    assert kept == train_args(str(tiny_model_dir), str(tmp_path / "data"), "toy", str(out), PARAMS, cpu=True) | {
        "output_dir": kept["output_dir"]  # the temporary folder it trained in
    }
    assert (out / "training_log.csv").read_text().startswith("step,loss\n")
