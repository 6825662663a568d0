"""Save and stop on the signals a scheduler sends before it kills a job.

SLURM sends SIGTERM when it preempts, requeues or times out a job (then SIGKILL after the site's
grace time), and any signal asked for with `--signal=<sig>@<seconds>` that long before the time
limit. A trainer that holds a `StopRequest` checks it after each optimizer step: once SIGTERM or
SIGUSR1 has arrived it saves its resumable state, and stops with one line saying where the state
is; the rerun (a requeued job, or Snakemake's retry) resumes from there. docs/resume.md.
"""

from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Notes the first stop signal; `requested` is then true (handlers only in the main thread)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._note)

    def _note(self, signum: int, _frame) -> None:
        if self.signal is None:
            self.signal = signum
            print(f"{signal.Signals(signum).name}: saving the training state after this step", file=sys.stderr)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else "no signal"


def stopped(name: str, saved: str) -> SystemExit:
    """The one-line exit of a trainer that saved its state on a stop signal."""
    return SystemExit(f"{name}: stopped; the training state is saved in {saved}; rerun the same command to resume")
