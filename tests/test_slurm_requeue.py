"""`scontrol requeue` of a running KD or SFT job on a real one-node SLURM (scripts/slurm_local.sh): SLURM
SIGTERMs the job, kd-train saves its state, the requeued job resumes from it and ends in the bytes of
an uninterrupted run. Root only and slow, like test_slurm (whose fixture starts and stops SLURM)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_onpolicy import kd_argv, run, weights
from test_sft import sft_argv, write_data
from test_slurm import slurm  # noqa: F401 (the fixture)
from test_stop_signals import TOY

from motab.training import sft
from motab.training.kd import loop as kd_loop


def squeue_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def requeued_job(argv: list[str], out: str, started, tmp_path) -> str:
    """Run `motab ARGV` as an sbatch job that may be requeued; once `started()`, `scontrol requeue` it;
    wait until it completes. Its output (both runs)."""
    command = shlex.join([sys.executable, "-m", "motab", *argv])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    flags = ["--parsable", "--requeue", "-p", "gpu", "--open-mode=append", "-o", out, f"--wrap=exec {command}"]
    job = subprocess.run(["sbatch", *flags], capture_output=True, text=True, env=env, check=True).stdout
    job, deadline = job.strip().split(";")[0], time.time() + 300
    while not started():
        assert time.time() < deadline and squeue_state(job) in ("PENDING", "RUNNING"), squeue_state(job)
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", job], check=True)
    deadline = time.time() + 600
    while squeue_state(job) != "COMPLETED":
        assert time.time() < deadline and squeue_state(job) not in ("FAILED", "CANCELLED"), squeue_state(job)
        time.sleep(1)
    return Path(out).read_text()


@pytest.mark.slow
def test_a_requeued_kd_job_saves_resumes_and_ends_in_the_uninterrupted_bytes(slurm, kd_setup, tmp_path):  # noqa: F811
    options = {"loss": "fkl", "steps": 30, "lr": 3e-3}
    full_out, _ = run(kd_setup, tmp_path / "full", **options)
    log = tmp_path / "job" / "log.csv"
    output = requeued_job(
        ["kd-train", *kd_argv(kd_setup, tmp_path / "job", **options)],
        str(tmp_path / "job.out"),
        lambda: log.is_file() and len(log.read_text().splitlines()) >= 3,
        tmp_path,
    )
    assert "SIGTERM: stopped; the training state is saved in" in output and "resuming from" in output, output
    out = tmp_path / "job" / "model"
    assert (out / kd_loop.LOG_FILE).read_bytes() == (full_out / kd_loop.LOG_FILE).read_bytes()
    wa, wb = weights(full_out), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_a_requeued_sft_job_saves_resumes_and_ends_in_the_uninterrupted_bytes(slurm, tiny_model_dir, tmp_path):  # noqa: F811
    write_data(tmp_path / "data", n=32)
    assert sft.main(sft_argv(tiny_model_dir, tmp_path / "data", tmp_path / "full", TOY)) == 0
    log = tmp_path / ".job.tmp" / "trainer_log.jsonl"
    output = requeued_job(
        ["sft", *sft_argv(tiny_model_dir, tmp_path / "data", tmp_path / "job", TOY)],
        str(tmp_path / "job.out"),
        lambda: log.is_file() and len(log.read_text().splitlines()) >= 2,
        tmp_path,
    )
    assert "SIGTERM: LLaMA-Factory train stopped; its state is saved in" in output and "resuming from" in output
    for name in ("model.safetensors", "epoch1/model.safetensors", "epoch3/model.safetensors", "training_log.csv"):
        assert (tmp_path / "job" / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
