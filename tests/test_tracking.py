"""Experiment tracking: a study's `tracking:` block reaches LLaMA-Factory (report_to), KDFlow (its
wandb flags) and kd-train (--tracking), and a missing package is a clear error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from motab.tracking import Tracker, kdflow_options, llamafactory_options

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_each_tool_gets_tracking_in_its_own_terms():
    assert llamafactory_options({"backend": "tensorboard"}, "sft_motab") == {
        "report_to": "tensorboard",
        "run_name": "sft_motab",
    }
    assert llamafactory_options(None, "x") == {}
    assert kdflow_options({"backend": "wandb", "project": "motab"}, "kd1") == {
        "use_wandb": True,
        "wandb_run_name": "kd1",
        "wandb_project": "motab",
    }
    with pytest.raises(ValueError, match="KDFlow .* logs to wandb only"):
        kdflow_options({"backend": "tensorboard"}, "kd1")


def test_kd_train_tensorboard_writes_events_or_says_what_is_missing(tmp_path):
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(SystemExit, match="needs the tensorboard package"):
            Tracker("tensorboard", str(tmp_path))
        return
    tracker = Tracker("tensorboard", str(tmp_path))
    tracker.log(1, {"step": 1, "loss": "0.5", "kl_to_teacher": "0.25", "rollout_tokens": "12.000"})
    tracker.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_no_tracking_logs_nothing(tmp_path):
    tracker = Tracker(None, str(tmp_path))
    tracker.log(1, {"loss": "0.5"})
    tracker.close()
    assert not list(tmp_path.iterdir())


def test_tracking_block_reaches_llamafactory_and_kd_train_in_the_plan(tmp_path):
    override = tmp_path / "tracking.yaml"
    override.write_text(
        "studies:\n  cotfilter:\n    tracking: {backend: tensorboard}\n"
        "  pwopsd:\n    tracking: {backend: wandb, project: pwopsd}\n"
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
            "select=[cotfilter,pwopsd]",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    sft = [line for line in lines if "motab sft --model" in line and "results/cotfilter/" in line]
    assert sft and all('"llamafactory":{"report_to":"tensorboard","run_name":' in line for line in sft)
    kd = [line for line in lines if "motab kd-train" in line and "results/pwopsd/" in line]
    assert kd and all(
        "--tracking wandb --tracking-dir logs/pwopsd/kd/" in line and "--tracking-project pwopsd" in line for line in kd
    )


def test_wandb_offline_mode_reaches_every_job_unless_the_user_set_one():
    from motab.tracking import wandb_env

    offline = {"tracking": {"backend": "wandb", "project": "p", "mode": "offline"}}
    assert wandb_env([{}, offline], {}) == {"WANDB_MODE": "offline"}
    assert wandb_env([offline], {"WANDB_MODE": "online"}) == {}  # the user's own choice wins
    assert wandb_env([{"tracking": {"backend": "wandb"}}], {}) == {}


def test_wandb_offline_mode_passes_the_schema(tmp_path):
    override = tmp_path / "wandb.yaml"
    override.write_text("studies:\n  toy:\n    tracking: {backend: wandb, mode: offline}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies:\n  toy:\n    tracking: {backend: wandb, mode: ofline}\n")
    runs = [
        subprocess.run(
            [SNAKEMAKE, "-n", "--configfile", "config.yaml", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for path in (override, bad)
    ]
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    message = runs[1].stdout + runs[1].stderr
    assert runs[1].returncode != 0 and "studies.toy.tracking.mode: expected one of online, offline" in message
