"""The toy study's data preparation through a real single-node SLURM: `snakemake --profile
profiles/slurm` submits real sbatch jobs, and a stage that asks for GPUs in config gets `--gpus`.

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
# The declared part of the toy study run through SLURM: problems, benchmark, problems.jsonl and the
# tokenizer (three waves of jobs). The `toy` stage asks for one GPU so its sbatch calls carry it.
TARGETS = ("results/toy/benchmarks/toy_test.jsonl", "results/toy/models/tokenizer")
OVERRIDES = """\
datasets:
  toy: {num_train: 100, num_test: 8}
studies:
  toy:
    resources:
      toy: {gpus: 1, cpus_per_task: 1, mem_mb: 2000, runtime: 15}
"""
# Without slurmdbd, sacct fails; squeue sees finished jobs because MinJobAge is an hour.
LOCAL_SLURM_FLAGS = ("--slurm-status-command", "squeue", "--slurm-no-account",
                     "--slurm-init-seconds-before-status-checks", "1")


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
        ["bash", str(SCRIPT), "status"], capture_output=True, text=True).stdout.count("running (") == 3
    proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if "apt-get install" in proc.stderr:
            pytest.skip(f"could not install SLURM: {proc.stderr.strip()[-500:]}")
        pytest.fail(f"scripts/slurm_local.sh start failed:\n{proc.stdout}\n{proc.stderr}")
    yield
    if not was_running:  # leave a SLURM the user started running; stop only what this test started
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=60)


def sbatch_calls(output: str) -> dict[str, str]:
    """{rule: sbatch flags} from the plugin's debug lines `sbatch call: sbatch ... --wrap=...`."""
    calls = {}
    for line in output.splitlines():
        match = re.search(r"sbatch call: (sbatch .*?) --wrap=", line)
        if match:
            rule = re.search(r"--comment rule_(\w+?)_wildcards", match.group(1)).group(1)
            calls[rule] = match.group(1)
    return calls


@pytest.mark.slow
def test_toy_data_stages_run_as_sbatch_jobs_with_gpu_flags_from_config(slurm, tmp_path):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("rules", "schemas", "profiles", "envs"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "slurm_toy.yaml").write_text(OVERRIDES)

    proc = subprocess.run(
        [SNAKEMAKE, "--profile", "profiles/slurm", "--configfile", "config.yaml", "slurm_toy.yaml",
         *LOCAL_SLURM_FLAGS, "--verbose", *TARGETS],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]

    calls = sbatch_calls(output)
    print("\n".join(f"{rule}: {flags}" for rule, flags in sorted(calls.items())))  # shown with -s
    assert set(calls) == {"toy_problems", "prepare", "benchmark", "toy_tokenizer"}
    for rule in ("toy_problems", "toy_tokenizer"):  # the `toy` stage asks for a GPU in config
        flags = calls[rule]
        assert "--gpus=1" in flags and "-p gpu" in flags and "--mem 2000" in flags and "-t 15" in flags, flags
    for rule in ("prepare", "benchmark"):  # the `data` stage falls back to the default: no GPU
        flags = calls[rule]
        assert "--gpus" not in flags and "--mem 4000" in flags and "-t 30" in flags, flags

    # SLURM itself ran them: four completed jobs of this run (named by its uuid), one per rule.
    uuid = re.search(r"--job-name (\S+)", next(iter(calls.values()))).group(1)
    jobs = subprocess.run(["squeue", "-h", "-t", "all", "-n", uuid, "-o", "%T %k"], capture_output=True,
                          text=True, check=True).stdout.split("\n")
    jobs = sorted(line for line in jobs if line)
    assert jobs == sorted(f"COMPLETED rule_{r}_wildcards_toy{w}" for r, w in
                          (("toy_problems", ""), ("prepare", ""), ("benchmark", "_toy_test"),
                           ("toy_tokenizer", ""))), jobs

    problems = (tmp_path / "results/toy/data/problems.jsonl").read_text().splitlines()
    assert len(problems) == 100
    assert len((tmp_path / "results/toy/benchmarks/toy_test.jsonl").read_text().splitlines()) == 8
    assert (tmp_path / "results/toy/models/tokenizer/tokenizer.json").is_file()
