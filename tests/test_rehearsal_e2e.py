"""A reduced CPU rehearsal of the motab study through Snakemake (studies/variants/rehearse.yaml with
tests/configs/rehearse_reduced.yaml): the study's whole DAG runs on toy stand-ins, and its table is
the study's table, marked as a rehearsal and naming what stood in for what."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
REDUCED = REPO / "tests" / "configs" / "rehearse_reduced.yaml"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory) -> Path:
    """A copy of the workflow that has rehearsed the reduced motab study to its table."""
    workdir = tmp_path_factory.mktemp("rehearsal")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, workdir / name)
    for name in ("rules", "schemas", "profiles", "envs", "report", "studies", "scripts"):
        shutil.copytree(REPO / name, workdir / name)
    command = [SNAKEMAKE, "--configfile", "studies/variants/rehearse.yaml", str(REDUCED), "-j2"]
    # the copy's jobs and plan import this checkout's package, not another one installed in the venv
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted((workdir / "logs").rglob("*.log"))[-4:])
        pytest.fail(f"rehearsal failed:\n{proc.stderr[-4000:]}\n{logs}")
    return workdir


@pytest.mark.e2e
def test_the_rehearsed_table_has_the_studys_rows_and_says_it_is_a_rehearsal(rehearsal):
    table = (rehearsal / "results/motab/tables/main.md").read_text()
    lines = table.splitlines()
    assert lines[0].startswith("## REHEARSAL (CPU, toy stand-ins; not the paper's numbers): MOTAB")
    # the paper's columns, each a toy stand-in under its own name
    assert lines[2].split("|")[2:8] == [" MATH-500 ", " AIME24 ", " AIME25 ", " AMC ", " GPQA-Diamond ", " Avg "]
    for label in (
        "Qwen3-4B",
        "Qwen3-32B (teacher)",
        "Qwen3-4B: SFT on teacher-only",
        "Qwen3-4B: SFT on SKD (gamma 0.9)",
        "Qwen3-4B: SFT on MOTAB (epoch 1)",
        "Qwen3-4B: SFT on MOTAB (epoch 2)",
        "Qwen2-7B",
        "Qwen2-7B: SFT on SKD (gamma 0.9)",
        "Qwen2-7B: SFT on MOTAB (epoch 2)",
        "SFT + on-policy KD (per-token RKL)",
    ):
        row = next((line for line in lines if line.startswith(f"| {label} |")), None)
        assert row is not None, (label, table)
        assert all(cell.strip() for cell in row.split("|")[2:7]), row  # a value per benchmark
    note = next(line for line in lines if line.startswith("Rehearsal on CPU"))
    for words in (
        "Qwen3-32B -> toy-teacher",
        "server: sglang -> embedded",
        "KDFlow",
        "deepspeed",
        "-> 0 (CPU)",
        "data limo -> toy problems",
        "math_500 -> its general_qa adapter",
    ):
        assert words in note, (words, note)
    # the study publishes no numbers (no studies/motab.reference.tsv): no reference row is made up
    assert "reference" not in (rehearsal / "results/motab/tables/main.spec.json").read_text()


@pytest.mark.e2e
def test_the_rehearsal_ran_the_studys_engines_and_modes(rehearsal):
    results = rehearsal / "results/motab"
    # EvalScope generated every benchmark (the study's engine), graded by our grader beside its own verdicts
    assert sorted(p.parent.name for p in results.glob("eval/teacher/*/seed0.evalscope.responses.jsonl")) == [
        "aime24",
        "aime25",
        "amc",
        "gpqa_diamond",
        "math500",
    ]
    # the released code's synthesis (compat: released), teacher-only step by step as the study runs it
    for method in ("teacher_only", "motab", "skd_gamma0p9", "motab_7b", "skd_7b_gamma0p9"):
        rows = [json.loads(line) for line in (results / f"synth/{method}.jsonl").read_text().splitlines()]
        assert rows and all(row["meta"]["params"]["compat"] == "released" for row in rows), method
    assert rows[0]["meta"]["teacher"] == "results/motab/models/toy-teacher"
    teacher_only = json.loads((results / "synth/teacher_only.jsonl").read_text().splitlines()[0])
    assert teacher_only["meta"]["params"]["stepwise"] is True
    # the built-in trainer's KD run with its teacher behind a server (teacher_server), on the toy models
    kd = json.loads((results / "ckpt/kd/sft_teacher_only_kd_rkl/kd_config.json").read_text())
    assert kd["loss"] == "rkl_onpolicy" and kd["teacher_server"] is True
