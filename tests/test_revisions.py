"""Hub revisions: `revision:` of hub models, datasets and benchmarks reaches the tools (SGLang
--revision, LLaMA-Factory model_revision, datasets' load_dataset) and the provenance records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from motab.data.prepare import hub_cache_path
from motab.provenance import provenance, revisions

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_provenance_names_every_revision():
    params = {
        "run": {"model": "Qwen3-8B"},
        "benchmark": {"path": "MathArena/hmmt_feb_2025", "revision": "abc123"},
        "model": {"revision": "def456"},
    }
    assert revisions(params) == {"benchmark.revision": "abc123", "model.revision": "def456"}
    assert provenance(params)["revisions"] == {"benchmark.revision": "abc123", "model.revision": "def456"}
    assert "revisions" not in provenance({"benchmark": {"path": "x.jsonl"}})


def test_each_revision_is_cached_apart():
    assert hub_cache_path("GAIR/LIMO", "train") == Path("results/hub_cache/GAIR__LIMO.train.jsonl")
    assert hub_cache_path("GAIR/LIMO", "train", "abc") == Path("results/hub_cache/GAIR__LIMO@abc.train.jsonl")


def test_revisions_reach_the_plans_commands(tmp_path):
    override = tmp_path / "revisions.yaml"
    override.write_text(
        "models:\n  Qwen3-8B: {revision: b968826}\n  Qwen2-1.5B: {revision: 8a16abf}\n"
        "datasets:\n  gsm8k_train: {revision: e53f048}\n"
        "benchmarks:\n  hmmt25: {revision: 9e8ad59}\n"
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
    lines = proc.stdout.splitlines()
    teacher = [line for line in lines if "motab synth --method" in line]
    assert teacher and all("--revision b968826" in line for line in teacher)  # the SGLang teacher server
    # a revision that is not a commit is followed by the download step, which locks the commit it
    # fetched; the job reads the lock (motab/hublock.py)
    assert any("motab hub-download --lock" in line and "--revision e53f048" in line for line in lines)
    assert any("motab prepare" in line and "locks/datasets--openai--gsm8k@e53f048.json:main" in line for line in lines)
    sft = [line for line in lines if "motab sft --model Qwen/Qwen2-1.5B" in line]
    assert sft and all('"model_revision":"8a16abf"' in line for line in sft)
    grade = [line for line in lines if "motab eval-grade" in line and "--run baseline" in line]
    assert grade and all('"model":{"revision":"8a16abf"}' in line for line in grade)
