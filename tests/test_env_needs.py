"""Every package a generated GPU command or config needs is installed by its stage env.

What the tools need, by their own code: LLaMA-Factory 0.9.5 stops on `enable_liger_kernel: true`
without liger-kernel (a mandatory version check) and falls back from `flash_attn: fa2` to SDPA
without flash-attn; KDFlow 3a7a21a imports liger-kernel for `--use_liger_kernel True` and loads the
student with `--attn_implementation`, default flash_attention_2 (kdflow/arguments/model_args.py).
The options are the ones the pipeline writes for each study's runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from envresolve import env_requirements, normal
from packaging.requirements import Requirement

from motab.plan import compose, workflow_config
from motab.training.kdflow import kdflow_argv
from motab.training.sft import train_args

REPO = Path(__file__).resolve().parents[1]
STUDIES = compose(workflow_config(REPO), REPO)["studies"]
KDFLOW_DEFAULT_ATTENTION = "flash_attention_2"


def installed(stage: str) -> set[str]:
    """Distribution names the stage env installs (pip list and post-deploy script)."""
    return {normal(Requirement(line).name) for line in env_requirements(REPO / "envs" / f"{stage}.yaml")}


def sft_needs(args: dict) -> set[str]:
    needs = {"llamafactory"}
    if args.get("enable_liger_kernel"):
        needs.add("liger-kernel")
    if args.get("flash_attn") == "fa2":
        needs.add("flash-attn")
    if args.get("deepspeed"):
        needs.add("deepspeed")
    return needs


def kdflow_needs(argv: list[str]) -> set[str]:
    flags = dict(zip(argv[3::2], argv[4::2]))
    needs = {"kdflow"}
    if flags.get("--use_liger_kernel") == "True":
        needs.add("liger-kernel")
    if "flash_attention" in flags.get("--attn_implementation", KDFLOW_DEFAULT_ATTENTION):
        needs.add("flash-attn")
    return needs


@pytest.mark.parametrize("study", sorted(s for s, spec in STUDIES.items() if spec.get("sft")))
def test_sft_env_installs_what_the_studys_llamafactory_options_need(study):
    args = train_args("Qwen/Qwen3-4B", "data", "train", "out", STUDIES[study]["sft"], cpu=False)
    missing = sft_needs(args) - installed("sft")
    assert not missing, f"studies/{study}.yaml sft options need {sorted(missing)}, which envs/sft.yaml lacks"


KDFLOW_BLOCKS = sorted(
    (study, name)
    for study, spec in STUDIES.items()
    for name, block in (spec.get("kd") or {}).items()
    if block.get("engine") == "kdflow"
)


@pytest.mark.parametrize(("study", "block"), KDFLOW_BLOCKS)
def test_kd_env_installs_what_the_kdflow_command_needs(study, block):
    argv = kdflow_argv(
        STUDIES[study]["kd"][block],
        student="Qwen/Qwen3-4B",
        teacher="Qwen/Qwen3-32B",
        prompts="prompts.jsonl",
        save_path="out",
        nodes=1,
        gpus_per_node=8,
    )
    missing = kdflow_needs(argv) - installed("kd")
    assert not missing, f"studies/{study}.yaml kd.{block}: KDFlow's flags need {sorted(missing)}, not in envs/kd.yaml"


def test_the_motab_study_needs_liger_and_flash_attn():
    # guards the two checks above against reading no option at all
    assert len(KDFLOW_BLOCKS) == 3
    args = train_args("Qwen/Qwen3-4B", "data", "train", "out", STUDIES["motab"]["sft"], cpu=False)
    assert sft_needs(args) == {"llamafactory", "liger-kernel", "flash-attn", "deepspeed"}
