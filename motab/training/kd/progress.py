"""The KD trainer's console progress: a header naming the run, then per step its place in the run,
loss, KL, throughput and time left, as synthesis, eval and SFT report theirs.

The machine-readable rows are elsewhere and unchanged: --log-csv (progress, with seconds) and the
checkpoint's training_log.csv (motab.training.kd.loop), which the report's curves read.
"""

from __future__ import annotations

# what kl_to_teacher measures (step.py): mean over response tokens of log p_S - log p_T on the
# student's own samples, i.e. a Monte-Carlo estimate of the reverse KL
KL_LABEL = "KL(student||teacher)"


def duration(seconds: float) -> str:
    """Seconds as h:mm:ss (or m:ss under an hour)."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Prints the header once and one line per step; the ETA is the mean step time of this run's
    steps so far times the steps left (a resumed run counts only the steps it ran)."""

    def __init__(self, steps: int, rollouts_per_step: int, first_step: int, loss: str, teachers: int = 1):
        self.steps, self.rollouts, self.first, self.loss, self.teachers = (
            steps,
            rollouts_per_step,
            first_step,
            loss,
            teachers,
        )
        self.elapsed = 0.0

    def header(self) -> str:
        start = f", resuming at step {self.first}" if self.first > 1 else ""
        teachers = f", {self.teachers} teachers" if self.teachers > 1 else ""
        return (
            f"KD: {self.steps} steps of {self.rollouts} rollouts, loss {self.loss}{teachers}{start}\n"
            f"{'step':>11}  {'loss':>10}  {KL_LABEL:>20}  {'tokens/s':>9}  {'ETA':>8}"
        )

    def line(self, row: dict) -> str:
        """One step's line from its logged row (step, loss, kl_to_teacher, rollout_tokens, seconds)."""
        step, seconds = int(row["step"]), float(row["seconds"])
        self.elapsed += seconds
        done = step - self.first + 1
        eta = self.elapsed / done * (self.steps - step)
        rate = float(row["rollout_tokens"]) * self.rollouts / seconds if seconds > 0 else 0.0
        place = f"{step}/{self.steps}"
        return (
            f"{place:>11}  {float(row['loss']):>10.4f}  {float(row['kl_to_teacher']):>20.4f}  "
            f"{rate:>9.1f}  {duration(eta):>8}"
        )
