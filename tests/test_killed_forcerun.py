"""A `snakemake --forcerun kd` killed while its job runs: Snakemake has deleted the checkpoint folder
(it removes a job's outputs when the job starts), so the next `snakemake -n` must plan that KD run
again and everything made from it, not say "Nothing to be done" while the tables report the deleted
model. Through Snakemake itself, on a copy of the toy workflow whose outputs all exist (no training:
the kill lands before the job's own command gets anywhere)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from dryrun import REPO, SNAKEMAKE, copy_workflow, make_up_to_date


@pytest.mark.slow
def test_a_killed_forcerun_kd_is_planned_again_with_what_follows(tmp_path):
    work = copy_workflow(tmp_path, with_package=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(work), str(REPO / "tests")]))
    make_up_to_date(work, [work / "config.yaml"], env)
    checkpoints = sorted((work / "results" / "toy" / "ckpt" / "kd").iterdir())
    assert checkpoints

    proc = subprocess.Popen(
        [SNAKEMAKE, "--forcerun", "kd", "--cores", "1"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while all(c.exists() for c in checkpoints):
        assert proc.poll() is None and time.time() < deadline, "snakemake ended before deleting a checkpoint"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deleted = [c for c in checkpoints if not c.exists()]
    assert len(deleted) == 1

    subprocess.run([SNAKEMAKE, "--unlock", "--cores", "1"], cwd=work, env=env, capture_output=True, check=True)
    plan = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1", "--quiet", "rules"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "Nothing to be done" not in plan.stdout + plan.stderr
    planned = plan.stdout + plan.stderr
    for rule in ("kd", "eval_grade", "table"):
        assert f"{rule} " in planned or f"{rule}\n" in planned, planned[-3000:]
