"""Child processes that die with their job, so a killed job never leaves training (or a server)
running, holding GPUs and writing into a folder its rerun uses.

- `run_child(argv, env)`: the child runs in its own process group and gets SIGTERM when this process
  dies, even by SIGKILL (PR_SET_PDEATHSIG); SIGTERM, SIGINT and SIGUSR1 sent to this process reach
  the child's group as SIGTERM (the one signal every tool on the way, torchrun included, passes on:
  our trainers save their state on it and stop); when the child ends, what is left of its group is
  killed.
- `job_lock(path)`: a rerun waits until the killed run's children have saved and ended.
- `die_with_snakemake()`: a job started by Snakemake (through the rule's shell) gets SIGTERM when
  that Snakemake process dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
SHELLS = {"bash", "sh", "dash", "zsh", "time", "timeout", "env"}
PR_SET_PDEATHSIG = 1


def _prctl_pdeathsig(sig: int) -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except OSError:  # not Linux: no parent-death signal
        pass


def die_with_parent(parent: int | None = None):
    """A preexec_fn: the child gets SIGTERM when its parent dies; with `parent` (the pid that
    starts it) also when the parent died before the prctl took effect."""

    def arm() -> None:
        _prctl_pdeathsig(signal.SIGTERM)
        if parent is not None and os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, wait up to grace_s, then SIGKILL it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    kill_group(proc)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL what is left of the group (children may outlive the leader; the group id is its pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait()
    deadline = time.monotonic() + 5.0  # signals land asynchronously: wait until the group is gone
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.05)


def run_child(
    argv: list[str], env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
) -> tuple[int, int | None]:
    """Run argv to its end (see the module docstring); (its return code, the first signal this
    process received and passed on, or None). `pass_fds`: a job_lock the child holds too."""
    proc = subprocess.Popen(
        argv, env=env, start_new_session=True, preexec_fn=die_with_parent(os.getpid()), pass_fds=pass_fds
    )
    received: list[int] = []

    def forward(signum, _frame) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED} if main_thread else {}
    try:
        code = proc.wait()
    except BaseException:
        stop_process_group(proc)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    kill_group(proc)
    return code, (received[0] if received else None)


def job_lock(path: str | os.PathLike):
    """An exclusive lock on `path` (created), held until this process and the children it is passed
    to (run_child's pass_fds) have all ended: a rerun waits here while a killed run's trainer, told
    to stop, still saves into the folder the rerun would resume from."""
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")  # noqa: SIM115 (held for the life of the job)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"{path}: an earlier run is still saving and stopping; waiting for it", flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def snakemake_ancestor() -> int | None:
    """The Snakemake process this process was started by, through shells only; None otherwise."""
    try:
        pid = os.getppid()
        while _comm(pid) in SHELLS:
            pid = _parent(pid)
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if any("snakemake" in os.path.basename(word) for word in words[:3]) else None


def die_with_snakemake() -> None:
    """SIGTERM this process when the Snakemake that started it dies (a thread waits on its pidfd)."""
    pid = snakemake_ancestor()
    if pid is None:
        return
    try:
        handle = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return

    def wait() -> None:
        select.select([handle], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="die-with-snakemake", daemon=True).start()
