"""The environment of a stage's child processes: this interpreter's tools, and threads that follow the
SLURM allocation."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from motab.jobenv import THREAD_VARS, child_env, thread_env, tool
from motab.training.sft import launch_env

VENV_BIN = Path(sys.executable).parent
BARE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # what a SLURM job running .venv/bin/python has
ONE_NODE = {
    "SLURM_JOB_ID": "77",
    "SLURM_NNODES": "1",
    "SLURM_NODEID": "0",
    "SLURM_JOB_NODELIST": "cpu01",
    "SLURM_CPUS_PER_TASK": "2",
    "PATH": BARE_PATH,
}


def test_llamafactory_finds_torchrun_without_an_activated_environment():
    # llamafactory-cli runs `torchrun` by name: it must be this environment's, found through PATH
    for environ in (
        ONE_NODE,
        ONE_NODE | {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "1"},
        {
            "SLURM_JOB_ID": "5",
            "SLURM_NNODES": "2",
            "SLURM_NODEID": "1",
            "SLURM_JOB_NODELIST": "n[1-2]",
            "SLURM_GPUS_ON_NODE": "4",
            "PATH": BARE_PATH,
        },
    ):
        env = launch_env(environ, visible_gpus=4)
        assert shutil.which("torchrun", path=env["PATH"]) == str(VENV_BIN / "torchrun")
        assert env["PATH"].endswith(BARE_PATH)


def test_sft_on_a_cpu_node_is_one_process_with_the_jobs_threads():
    env = launch_env(ONE_NODE | {"SLURM_GPUS_ON_NODE": "1"}, visible_gpus=0)
    assert "FORCE_TORCHRUN" not in env and "NPROC_PER_NODE" not in env
    assert env["OMP_NUM_THREADS"] == "2" and env["DISABLE_VERSION_CHECK"] == "1"


def test_several_processes_share_the_jobs_cpus():
    environ = ONE_NODE | {"SLURM_GPUS_ON_NODE": "4", "SLURM_CPUS_PER_TASK": "32"}
    env = launch_env(environ, visible_gpus=4)
    assert env["NPROC_PER_NODE"] == "4" and all(env[name] == "8" for name in THREAD_VARS)
    assert thread_env({"SLURM_CPUS_PER_TASK": "3"}, processes=8)["OMP_NUM_THREADS"] == "1"
    assert thread_env({"PATH": "/bin"}) == {}  # outside SLURM: Snakemake's OMP_NUM_THREADS stands
    with pytest.raises(ValueError, match="SLURM_CPUS_PER_TASK should be a positive integer, found '0'"):
        thread_env({"SLURM_CPUS_PER_TASK": "0"})


def test_tools_come_from_the_running_environment_first():
    assert tool("torchrun") == str(VENV_BIN / "torchrun")
    assert tool("sh") == shutil.which("sh")  # not in the venv: PATH
    with pytest.raises(FileNotFoundError, match="no-such-tool-xyz.*neither in"):
        tool("no-such-tool-xyz")
    path = child_env({"PATH": f"/bin:{VENV_BIN}"})["PATH"].split(os.pathsep)
    assert path == [str(VENV_BIN), "/bin"]


def test_motab_commands_take_their_threads_from_the_slurm_allocation():
    code = "import torch, os; print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])"
    probe = ["-c", f"import motab.cli, sys; motab.cli.apply_job_threads(); exec({code!r})"]
    env = dict(os.environ, SLURM_CPUS_PER_TASK="1", OMP_NUM_THREADS="7")
    out = subprocess.run([sys.executable, *probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]
