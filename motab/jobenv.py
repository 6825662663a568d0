"""The environment a stage's child processes run in: the tools of this interpreter and the job's CPUs.

Tools. A rule runs `.venv/bin/python -m motab ...` (or a conda env's or a container's python) without
activating anything, so that environment's `bin/` is not necessarily on PATH. Tools that we start, and
tools that they start by name (`llamafactory-cli` calls `torchrun`; KDFlow starts `ray`), must still
come from the same environment: `tool()` finds a console script beside the running interpreter, and
`child_env()` puts that folder first on PATH for every child. The folder is `sys.executable`'s parent,
not resolved: a venv's `python` is a symlink into the base interpreter, whose `bin/` has no torchrun.

Threads. Inside a SLURM job the allocation is SLURM_CPUS_PER_TASK. OpenMP, MKL, OpenBLAS and torch
default to every core of the node, so two jobs sharing a node would each run one thread per core and
slow each other down by an order of magnitude. `thread_env()` gives the thread variables for the job's
CPUs (split between the processes a launcher starts); `apply_job_threads()` sets them for this process
before torch is imported. Outside SLURM nothing changes: Snakemake sets OMP_NUM_THREADS to the rule's
threads, which come from the same config value (resources.<stage>.cpus_per_task).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

# The line a GPU stage's job logs at start (sft, kd-train); `motab cost` reads it beside the job's
# benchmark file, so a job that found no GPU counts no GPU hours whatever it asked for.
GPUS_USED = "GPUs used:"


def announce_gpus(count: int) -> None:
    print(f"{GPUS_USED} {count}", flush=True)


THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


class JobError(RuntimeError):
    """A job's failure that its message explains (what failed, which log to read): `motab` prints
    it as one message without a traceback."""


def env_bin() -> Path:
    """The `bin/` folder of the running interpreter's environment (venv, conda env or container)."""
    return Path(sys.executable).parent


def tool(name: str) -> str:
    """The path of console script `name` from the running environment, else from PATH.

    Raises FileNotFoundError naming both places when it is in neither.
    """
    beside = env_bin() / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name!r} is neither in {env_bin()} (the environment running motab) nor on PATH; "
            f"install it into that environment"
        )
    return found


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default os.environ) with this environment's `bin/` first on PATH."""
    env = dict(os.environ if env is None else env)
    here = str(env_bin())
    rest = [part for part in env.get("PATH", "").split(os.pathsep) if part and part != here]
    env["PATH"] = os.pathsep.join([here, *rest])
    return env


def job_cpus(env: Mapping[str, str]) -> int | None:
    """The CPUs SLURM gave this task (SLURM_CPUS_PER_TASK), or None outside SLURM or when unset."""
    value = env.get("SLURM_CPUS_PER_TASK", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SLURM environment: SLURM_CPUS_PER_TASK should be a positive integer, found {value!r}")
    return int(value)


def thread_env(env: Mapping[str, str], processes: int = 1) -> dict[str, str]:
    """The thread variables for each of `processes` processes sharing the job's CPUs ({} outside SLURM)."""
    cpus = job_cpus(env)
    if cpus is None:
        return {}
    threads = str(max(1, cpus // max(1, processes)))
    return dict.fromkeys(THREAD_VARS, threads)


def apply_job_threads() -> int | None:
    """Set this process's thread variables from the SLURM allocation (before torch is imported).

    Returns the thread count, or None outside SLURM. If torch is already imported its intra-op pool
    is resized too.
    """
    threads = thread_env(os.environ)
    if not threads:
        return None
    os.environ.update(threads)
    count = int(threads["OMP_NUM_THREADS"])
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    return count
