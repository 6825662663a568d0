"""The DAG as a cluster user sees it: the slurm profile plans the paper study with per-stage
resources from config, the toy study never leaks into it, and a bad config stops the run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def rule_resources(output: str, rule: str, study: str = "motab", run: str = "") -> str:
    """The resources of the first planned job of `rule` in `study` (and `run`, if given)."""
    for block in output.split(f"\nrule {rule}:")[1:]:
        block = block.split("\n\n", 1)[0]
        if re.search(rf"wildcards: .*\bstudy={study}\b", block) and (not run or re.search(rf"\brun={run}\b", block)):
            return re.search(r"resources: (.*)", block).group(1) + ","
    raise AssertionError(f"no {rule} job of study {study} in the plan")


def test_slurm_profile_plans_the_paper_studies_with_gpus_from_config():
    proc = dry_run("--profile", "profiles/slurm", "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Using profiles profiles/slurm and workflow specific profile profiles/default" in out + proc.stderr
    for table in (
        "motab/tables/main",
        "pwopsd/tables/qwen3_4b",
        "pwopsd/tables/dsr1_llama_8b",
        "pwopsd/tables/olmo3_7b_think",
        "cotfilter/tables/accuracy",
        "cotfilter/tables/words",
        "cotfilter/tables/critic",
        "opd/tables/main",
    ):
        assert f"results/{table}.md" in out, table
    assert "toy_model" not in out and "results/toy/" not in out  # the toy study does not leak in
    sft_runtime = yaml.safe_load((REPO / "studies" / "motab.yaml").read_text())["studies"]["motab"]["resources"]["sft"]
    assert "gpu=8" in rule_resources(out, "sft") and f"runtime={sft_runtime['runtime']}," in rule_resources(out, "sft")
    # the motab study evaluates through EvalScope, one job per run; an eval job asks for its model's
    # tp: the Qwen3-32B teacher 4 GPUs, the Qwen3-4B student 1
    assert "gpu=4," in rule_resources(out, "eval_evalscope_run_motab", run="teacher")
    assert "gpu=1," in rule_resources(out, "eval_evalscope_run_motab", run="base_student")
    assert "\nrule eval_evalscope:" not in out
    assert "gpu=0" in rule_resources(out, "eval_grade")
    assert "gpu=1," in rule_resources(out, "sft", "cotfilter")  # the CoT-filter seed's one-GPU LoRA SFT
    assert "gpu=8" in rule_resources(out, "kd", "pwopsd")
    assert "gpu=1," in rule_resources(out, "eval_generate_run_pwopsd", "pwopsd")
    # PW-OPSD and its baselines self-distil: 3 students x 5 losses, each from the student's own weights
    selfdistill = re.findall(r"motab kd-train --student (\S+) --teacher self --prompts results/pwopsd/", out)
    assert len(selfdistill) == 15 and len(set(selfdistill)) == 3
    # Strong-Baseline and Tinker's SFT read their train set's own solutions, no synthesis
    assert "reorganize --problems results/cotfilter/data/problems.jsonl" in out
    # from the hub cache's snapshot of the pinned base model (the download step fetches it first)
    base = "hub_cache/hub/models--Qwen--Qwen3-8B-Base/snapshots/49e3418fbbbca6ecbdf9608b4d22e5a407081db4"
    assert f"sft --model {base} --dataset-dir results/opd/sft_data/train-data" in out
    assert "motab hub-download --kind model --repo Qwen/Qwen3-8B-Base --revision 49e3418f" in out


def test_bare_profile_name_resolves_after_setup(tmp_path):
    import os

    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path))
    subprocess.run(["bash", "scripts/link_profiles.sh"], cwd=REPO, env=env, check=True, capture_output=True)
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--profile", "slurm", "all"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/motab/tables/main.md" in proc.stdout


def test_default_profile_plans_the_toy_study():
    proc = dry_run()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/toy/tables/main.md" in proc.stdout and "results/motab/" not in proc.stdout


def test_bad_config_value_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies:\n  toy:\n    eval: {n: zero}\n")
    proc = dry_run("--configfile", "config.yaml", str(bad))
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "studies.toy.eval.n: expected integer, found 'zero'" in message
    bad.write_text("studies:\n  toy:\n    sft: {learning_rat: 0.1}\n")
    proc = dry_run("--configfile", "config.yaml", str(bad))
    assert proc.returncode != 0 and "learning_rat" in proc.stdout + proc.stderr
