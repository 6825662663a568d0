"""The toy study through a real single-node SLURM, by docs/cluster.md's command: `snakemake
--profile profiles/slurm all --config select=[toy]` submits one sbatch job per job of every rule (a
reduced study), SFT and KD get their (fake) GPU, and the tables come out.

The SLURM comes from scripts/slurm_local.sh (Debian packages, root). Where the script cannot run
(not root, no apt-get, or a SLURM that the script did not configure is already here) the test is
skipped with that reason; the daemons it starts are stopped again by their PIDs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SCRIPT = REPO / "scripts" / "slurm_local.sh"
MARK = "# written by motab scripts/slurm_local.sh"
# A reduced toy study with one job (or a few) of every rule: tests/configs/toy_slurm.yaml on top of the
# e2e test's reduced budgets. SFT and KD ask for a (fake) GPU in studies/toy.yaml, so their jobs carry --gpus.
CONFIGS = ("config.yaml", "toy_reduced.yaml", "toy_slurm.yaml", "math500_path.yaml")
EVALSCOPE_TARGET = "results/toy/eval/base_student/math500/seed0.evalscope.responses.jsonl"
RULES = {
    "toy_problems",
    "toy_dataset",
    "toy_tokenizer",
    "toy_model",
    "prepare",
    "prepare_dataset",
    "benchmark",
    "kd_prompts",
    "synth",
    "synth_filter",
    "reorganize",
    "train_data_sft",
    "sft",
    "kd",
    "eval_generate",
    "eval_evalscope",
    "eval_grade",
    "eval_critic",
    "table",
    "table_chart",
    "training_curves",
    "cost_table",
    "data_card",
}
# Without slurmdbd, sacct fails; squeue sees finished jobs because MinJobAge is an hour.
LOCAL_SLURM_FLAGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks",
    "1",
)


def _cannot_start_reason() -> str | None:
    if os.geteuid() != 0:
        return "scripts/slurm_local.sh needs root (apt-get and the SLURM daemons); not root here"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "scripts/slurm_local.sh installs SLURM with apt-get; no apt-get on this machine"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.is_file() and MARK not in conf.read_text():
        return f"{conf} belongs to a SLURM not set up by scripts/slurm_local.sh; the test does not submit to it"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _cannot_start_reason()
    if reason:
        pytest.skip(reason)
    state = Path("/var/lib/motab-slurm")
    was_running = (state / "slurmctld.pid").is_file() and subprocess.run(
        ["bash", str(SCRIPT), "status"], capture_output=True, text=True
    ).stdout.count("running (") == 3
    proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if "apt-get install" in proc.stderr:
            pytest.skip(f"could not install SLURM: {proc.stderr.strip()[-500:]}")
        pytest.fail(f"scripts/slurm_local.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    yield
    if not was_running:  # leave a SLURM the user started running; stop only what this test started
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=60)
        # Its config must go too: with it, every later Snakemake start waits ~9 s for the stopped controller.
        assert not Path("/etc/slurm/slurm.conf").exists(), "slurm_local.sh stop left its slurm.conf behind"


def sbatch_calls(output: str) -> dict[str, list[str]]:
    """{rule: [sbatch flags of each job]} from the plugin's debug lines `sbatch call: sbatch ... --wrap=...`."""
    calls: dict[str, list[str]] = {}
    for line in output.splitlines():
        match = re.search(r"sbatch call: (sbatch .*?) --wrap=", line)
        if match:
            rule = re.search(r"--comment rule_(\w+?)_wildcards", match.group(1)).group(1)
            calls.setdefault(rule, []).append(match.group(1))
    return calls


@pytest.mark.slow
def test_every_rule_of_the_toy_study_runs_as_an_sbatch_job(slurm, tmp_path, shared_data_config):
    """docs/cluster.md's one-node SLURM command: every rule is an sbatch job that SLURM
    completes, SFT and KD ask for their GPU, and the tables come out."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("rules", "schemas", "profiles", "envs", "report", "studies", "scripts"):
        shutil.copytree(REPO / name, tmp_path / name)
    for name in ("toy_reduced.yaml", "toy_slurm.yaml"):
        shutil.copy(REPO / "tests" / "configs" / name, tmp_path / name)
    shutil.copy(shared_data_config, tmp_path / "math500_path.yaml")  # the real benchmark files

    proc = subprocess.run(
        [
            SNAKEMAKE,
            "--profile",
            "profiles/slurm",
            "all",
            EVALSCOPE_TARGET,
            "--configfile",
            *CONFIGS,
            "--config",
            "select=[toy]",
            *LOCAL_SLURM_FLAGS,
            "--verbose",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted((tmp_path / "logs").rglob("*.log")))
        pytest.fail(f"{output[-6000:]}\n{logs[-8000:]}")

    calls = sbatch_calls(output)
    print("\n".join(f"{rule}: {flags[0]}" for rule, flags in sorted(calls.items())))  # shown with -s
    assert set(calls) == RULES
    for rule, flags in calls.items():
        gpu = rule in ("sft", "kd")  # studies/toy.yaml: studies.toy.resources.{sft,kd}.gpus = 1
        # GPU jobs on the gpu partition, CPU jobs off it (config.yaml's slurm: block)
        assert all(("--gpus=1" in f) == gpu and ("-p gpu" in f) == gpu for f in flags), (rule, flags)
        # cpus_per_task 1 for every toy job (studies/toy.yaml): its thread count, here as locally
        assert all(re.search(r"--cpus-per-task[= ]1\b", f) for f in flags), (rule, flags)

    # SLURM itself ran them: every job of this run (named by its uuid) completed.
    uuid = re.search(r"--job-name (\S+)", calls["prepare"][0]).group(1)
    states = subprocess.run(
        ["squeue", "-h", "-t", "all", "-n", uuid, "-o", "%T"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert states and set(states) == {"COMPLETED"} and len(states) == sum(map(len, calls.values())), states

    table = (tmp_path / "results/toy/tables/main.md").read_text()
    for label in (
        "Student (base)",
        "SFT on filtered teacher CoT",
        "SFT on the train set's solutions",
        "SFT + KD (RKL)",
    ):
        assert re.search(rf"^\| {re.escape(label)} \|.*\d+\.\d\d", table, re.M), table
    assert (tmp_path / "results/toy/tables/critic.md").is_file()
    assert (tmp_path / "results/toy/report/main.png").is_file()
    assert (tmp_path / "results/toy/report/training_curves.png").is_file()
    # SFT in a job with one (fake, CUDA-less) GPU trains in one process: no torchrun, no 0-process launch
    sft_logs = "".join(p.read_text() for p in (tmp_path / "logs/toy/sft").glob("*.log"))
    assert "SFT finished" in sft_logs and "distributed tasks" not in sft_logs
