"""Per-epoch checkpoints: the SFT output keeps one loadable folder per epoch, and a run's eval_epochs
only adds evaluations: a changed list reruns eval and tables, never the SFT."""

from __future__ import annotations

import json
import os

import pytest
from dryrun import REPO, copy_workflow, make_up_to_date, plan_many

from motab.training.sft import keep_epoch_checkpoints


def fake_checkpoint(folder, step: int, epoch: float) -> None:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": step}))
    for name in ("model.safetensors", "config.json", "optimizer.pt", "scheduler.pt", "rng_state_0.pth"):
        (path / name).write_text(f"{name} at {step}")
    (path / "global_step10").mkdir()


def test_each_epochs_checkpoint_becomes_epoch_k_with_tokenizer_and_without_optimizer(tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "trainer_log.jsonl"):
        (tmp_path / name).write_text(name)
    fake_checkpoint(tmp_path, 12, 1.0)
    fake_checkpoint(tmp_path, 24, 2.0)
    fake_checkpoint(tmp_path, 30, 2.5)  # a save that is not at an epoch's end stays a checkpoint (removed later)
    kept = keep_epoch_checkpoints(tmp_path)
    assert [p.name for p in kept] == ["epoch1", "epoch2"]
    assert sorted(p.name for p in (tmp_path / "epoch2").iterdir()) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "trainer_state.json",
    ]
    assert (tmp_path / "epoch1" / "model.safetensors").read_text() == "model.safetensors at 12"
    assert (tmp_path / "checkpoint-30").is_dir() and not (tmp_path / "checkpoint-12").exists()


def test_a_checkpoint_without_trainer_state_is_an_error(tmp_path):
    (tmp_path / "checkpoint-5").mkdir()
    with pytest.raises(ValueError, match="checkpoint-5/trainer_state.json: missing"):
        keep_epoch_checkpoints(tmp_path)


def test_llamafactory_saves_one_loadable_checkpoint_per_epoch(tiny_model_dir, tmp_path):
    import torch
    from test_sft import PARAMS, sft_argv, write_data
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from motab.training.sft import main as sft_main

    write_data(tmp_path / "data")
    out = tmp_path / "ckpt"
    params = PARAMS | {"num_train_epochs": 2, "save_strategy": "epoch", "save_only_model": True}
    assert sft_main(sft_argv(tiny_model_dir, tmp_path / "data", out, params)) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["epoch1", "epoch2"]  # no checkpoint-N left
    weights = {name: AutoModelForCausalLM.from_pretrained(out / name).state_dict() for name in ("epoch1", "epoch2")}
    final = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert all(torch.equal(weights["epoch2"][k], final[k]) for k in final)
    assert any(not torch.equal(weights["epoch1"][k], final[k]) for k in final)
    assert AutoTokenizer.from_pretrained(out / "epoch1").encode("1 + 1") == AutoTokenizer.from_pretrained(out).encode(
        "1 + 1"
    )


SMALL = "studies:\n  toy:\n    tables:\n      main: {rows: [base_student, sft_motab]}\n"


def test_changing_eval_epochs_reruns_only_eval_and_tables(tmp_path):
    """The toy study cut to two rows (the base student, sft_motab at epochs 2 and 4), made up to date;
    then eval_epochs [2, 4] -> [2, 4, 1] plans the new epoch's eval and the tables, nothing else."""
    workdir = copy_workflow(tmp_path, with_package=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(workdir), str(REPO / "tests")]))
    (workdir / "small.yaml").write_text(SMALL)
    (workdir / "more.yaml").write_text(SMALL + "    runs:\n      sft_motab: {eval_epochs: [2, 4, 1]}\n")
    (workdir / "fewer.yaml").write_text(SMALL + "    runs:\n      sft_motab: {eval_epochs: [4]}\n")
    make_up_to_date(workdir, [workdir / "config.yaml", workdir / "small.yaml"], env)
    same, more, fewer = plan_many(
        workdir,
        [
            {"configfiles": ["config.yaml", "small.yaml"]},
            {"configfiles": ["config.yaml", "more.yaml"]},
            {"configfiles": ["config.yaml", "fewer.yaml"]},
        ],
        env,
    )
    assert same == set()
    jobs = sorted((rule, dict(wildcards).get("run", ""), dict(wildcards).get("seed", "")) for rule, wildcards in more)
    assert jobs == [
        ("all", "", ""),
        ("cost_table", "", ""),  # the study's cost table reads every job's benchmark file
        ("eval_generate", "sft_motab_ep1", "0"),
        ("eval_generate", "sft_motab_ep1", "1"),
        ("eval_grade", "sft_motab_ep1", "0"),
        ("eval_grade", "sft_motab_ep1", "1"),
        ("table", "", ""),
        ("table_chart", "", ""),
    ]
    assert sorted(rule for rule, _ in fewer) == [
        "all",
        "cost_table",
        "table",
        "table_chart",
    ]  # a dropped epoch: tables only
