"""SFT through the real `llamafactory-cli train` on a tiny Qwen3 (CPU)."""

import json

import pytest
import yaml

from motab.jsonio import write_jsonl
from motab.training.sft import export_args, main as sft_main, train_args

PARAMS = {"finetuning_type": "full", "cutoff_len": 128, "per_device_train_batch_size": 8,
          "gradient_accumulation_steps": 1, "learning_rate": 5e-3, "num_train_epochs": 1,
          "lr_scheduler_type": "cosine", "warmup_ratio": 0.0, "seed": 0}


def test_yaml_carries_every_config_value_and_cluster_settings():
    params = PARAMS | {"lr_scheduler_type": "cosine_with_min_lr", "deepspeed": "envs/deepspeed/ds_z3_config.json",
                       "finetuning_type": "lora", "lora_rank": 64, "lora_alpha": 128}
    args = train_args("Qwen/Qwen3-4B", "data", "teacher_only", "out", params, cpu=False)
    for key in ("cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
                "num_train_epochs", "deepspeed", "lora_rank", "lora_alpha", "seed"):
        assert args[key] == params[key]
    assert args["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1}
    assert args["template"] == "qwen" and args["bf16"] is True and args["stage"] == "sft"
    assert export_args("m", "out/adapter", "out", "qwen")["adapter_name_or_path"] == "out/adapter"


@pytest.mark.slow
def test_llamafactory_full_sft_changes_the_weights(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    write_jsonl(tmp_path / "data" / "train.jsonl",
                [{"instruction": f"Compute {i} + 1.", "input": "", "output": f"The answer is \\boxed{{{i + 1}}}."}
                 for i in range(32)])
    (tmp_path / "data" / "dataset_info.json").write_text(json.dumps(
        {"toy": {"file_name": "train.jsonl", "columns": {"prompt": "instruction", "query": "input",
                                                         "response": "output"}}}))
    out = tmp_path / "ckpt"
    assert sft_main(["--model", str(tiny_model_dir), "--dataset-dir", str(tmp_path / "data"), "--dataset", "toy",
                     "--output", str(out), "--params-json", json.dumps(PARAMS)]) == 0
    config = yaml.safe_load((out / "llamafactory_train.yaml").read_text())
    assert config["model_name_or_path"] == str(tiny_model_dir) and config["bf16"] is False
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = AutoModelForCausalLM.from_pretrained(out)
    diffs = [not torch.equal(a, b) for a, b in zip(base.state_dict().values(), tuned.state_dict().values())]
    assert sum(diffs) >= len(diffs) // 2
    assert not (tmp_path / ".ckpt.tmp").exists()
