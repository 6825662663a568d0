"""Jobs that are told to stop (SIGTERM, or SLURM's --signal=USR1 before the time limit) save their
state and stop; the rerun resumes to the bytes of an uninterrupted run. A killed `motab sft` (even
by SIGKILL) leaves nothing training. Real signals to real tiny runs on CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_onpolicy import kd_argv, run, weights
from test_sft import PARAMS, sft_argv, write_data

from motab.training import sft
from motab.training.kd import loop as kd_loop

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
# the toy study's SFT settings: a checkpoint per epoch, with the whole training state
TOY = PARAMS | {"num_train_epochs": 3, "save_strategy": "epoch", "save_only_model": False, "logging_steps": 1}


def start(command: str, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "motab", command, *argv],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(proc: subprocess.Popen, done, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not done():
        assert proc.poll() is None, f"ended before {what}:\n{proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.02)


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line holds `text` (a run's own output path)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            live = entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            if live and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_kd_saves_on_sigusr1_and_the_rerun_ends_in_the_uninterrupted_bytes(kd_setup, tmp_path):
    options = {"loss": "fkl", "steps": 12, "lr": 3e-3}
    full_out, _ = run(kd_setup, tmp_path / "full", **options)
    argv = kd_argv(kd_setup, tmp_path / "stopped", **options)  # no save_steps: the signal alone saves
    proc = start("kd-train", argv)
    log = tmp_path / "stopped" / "log.csv"
    wait_for(proc, lambda: log.is_file() and len(log.read_text().splitlines()) >= 3, "two logged steps")
    proc.send_signal(signal.SIGUSR1)
    output = proc.communicate(timeout=120)[0]
    saved = kd_loop.latest_training_state(tmp_path / "stopped" / "model.partial")
    assert proc.returncode == 1 and saved is not None and saved.name != "step-12", output[-2000:]
    assert f"SIGUSR1: stopped; the training state is saved in {saved}" in output.splitlines()[-1]

    out, _ = run(kd_setup, tmp_path / "stopped", **options)
    assert (out / kd_loop.LOG_FILE).read_bytes() == (full_out / kd_loop.LOG_FILE).read_bytes()
    wa, wb = weights(full_out), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_sft_saves_on_sigterm_leaves_nothing_running_and_resumes_to_the_same_bytes(tiny_model_dir, tmp_path):
    """SIGTERM to `motab sft` mid-epoch (what SLURM sends on requeue, preemption or time limit):
    LLaMA-Factory saves a full checkpoint, every process ends, and the rerun ends in the bytes of an
    uninterrupted run, the epoch checkpoints included."""
    write_data(tmp_path / "data", n=32)  # 4 steps an epoch
    assert sft.main(sft_argv(tiny_model_dir, tmp_path / "data", tmp_path / "full", TOY)) == 0

    out, work = tmp_path / "stopped", tmp_path / ".stopped.tmp"
    proc = start("sft", sft_argv(tiny_model_dir, tmp_path / "data", out, TOY))
    log = work / "trainer_log.jsonl"
    wait_for(proc, lambda: log.is_file() and len(log.read_text().splitlines()) >= 2, "two logged steps")
    os.kill(proc.pid, signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, output[-3000:]
    saved = sft.latest_checkpoint(work)
    assert saved is not None and f"saved in {saved}; rerun to resume" in output.splitlines()[-1]
    assert processes_naming(str(work)) == []  # LLaMA-Factory ended with its job

    assert sft.main(sft_argv(tiny_model_dir, tmp_path / "data", out, TOY)) == 0
    for name in ("model.safetensors", "epoch1/model.safetensors", "epoch3/model.safetensors", "training_log.csv"):
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name


@pytest.mark.slow
def test_sigkill_of_motab_sft_stops_llamafactory(tiny_model_dir, tmp_path):
    """Before: `llamafactory-cli train` went on under PID 1 and kept writing checkpoints."""
    write_data(tmp_path / "data", n=64)
    work = tmp_path / ".killed.tmp"
    proc = start(
        "sft", sft_argv(tiny_model_dir, tmp_path / "data", tmp_path / "killed", TOY | {"num_train_epochs": 20})
    )
    log = work / "trainer_log.jsonl"
    wait_for(proc, lambda: log.is_file() and log.read_text().strip(), "a logged step")
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as a job killer that knows only its pid
    proc.wait()
    deadline = time.time() + 60
    while processes_naming(str(work)) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_naming(str(work)) == []


@pytest.mark.slow
def test_sigkill_of_snakemake_stops_its_kd_train_job_after_saving(kd_setup, tmp_path):
    """A real Snakemake runs `motab kd-train` through its shell, as the kd rule does; SIGKILL of that
    Snakemake alone (before: kd-train went on under PID 1) makes kd-train save its state and end."""
    argv = kd_argv(kd_setup, tmp_path, loss="fkl", steps=400)
    command = " ".join([sys.executable, "-m", "motab", "kd-train", *argv])
    (tmp_path / "Snakefile").write_text(f'rule kd:\n    shell:\n        "{command} > kd.log 2>&1"\n')
    snakemake = subprocess.Popen(
        [str(Path(sys.executable).with_name("snakemake")), "--cores", "1", "--directory", str(tmp_path)],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = tmp_path / "log.csv"
    wait_for(snakemake, lambda: log.is_file() and len(log.read_text().splitlines()) >= 2, "a logged step")
    os.kill(snakemake.pid, signal.SIGKILL)
    snakemake.wait()
    deadline = time.time() + 60
    while processes_naming(str(tmp_path / "model")) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_naming(str(tmp_path / "model")) == []
    assert kd_loop.latest_training_state(tmp_path / "model.partial") is not None  # saved on its way out
    assert "SIGTERM: stopped; the training state is saved in" in (tmp_path / "kd.log").read_text()
