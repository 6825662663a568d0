"""Experiment tracking: a study's optional `tracking: {backend: tensorboard | wandb, project: NAME}`
reaches each trainer in its own terms.

- LLaMA-Factory (SFT): `report_to` and `run_name` in its YAML (through the sft block's
  `llamafactory:` pass-through; HF's Trainer writes TensorBoard events under output_dir/runs).
- KDFlow: its own flags `--use_wandb True --wandb_project --wandb_run_name` (KDFlow 3a7a21a's
  LoggingArguments have wandb only, so tensorboard is an error at planning).
- kd-train: `--tracking tensorboard|wandb --tracking-dir DIR`: each step's CSV row is also logged
  as scalars (torch.utils.tensorboard needs the `tensorboard` package; wandb its own).
- `mode: offline` (wandb): the workflow sets WANDB_MODE=offline for its jobs (wandb_env); the runs
  stay under wandb/ until `wandb sync` uploads them from a machine with network (docs/data.md).
"""

from __future__ import annotations

from typing import Any

BACKENDS = ("tensorboard", "wandb")


def wandb_env(studies: list[dict], environ: dict) -> dict[str, str]:
    """WANDB_MODE=offline for the jobs when a selected study's `tracking` says `mode: offline` (a
    user's own WANDB_MODE wins): every trainer's wandb (LLaMA-Factory's, KDFlow's, kd-train's)
    reads it, so runs are written under wandb/ and uploaded later with `wandb sync`."""
    offline = any((s.get("tracking") or {}).get("mode") == "offline" for s in studies)
    return {"WANDB_MODE": "offline"} if offline and "WANDB_MODE" not in environ else {}


def _backend(tracking: dict | None) -> str | None:
    if not tracking:
        return None
    backend = tracking.get("backend")
    if backend not in BACKENDS:
        raise ValueError(f"tracking.backend: expected one of {', '.join(BACKENDS)}, found {backend!r}")
    return backend


def llamafactory_options(tracking: dict | None, run: str) -> dict:
    """LLaMA-Factory YAML keys for the run (none without tracking)."""
    backend = _backend(tracking)
    return {"report_to": backend, "run_name": run} if backend else {}


def kdflow_options(tracking: dict | None, run: str, where: str = "tracking") -> dict:
    """KDFlow flags for the run; KDFlow logs to wandb only."""
    backend = _backend(tracking)
    if backend is None:
        return {}
    if backend != "wandb":
        raise ValueError(f"{where}: KDFlow (engine: kdflow) logs to wandb only, not {backend}")
    return {"use_wandb": True, "wandb_run_name": run} | (
        {"wandb_project": tracking["project"]} if tracking.get("project") else {}
    )


class Tracker:
    """Scalars of each training step to TensorBoard or wandb; `Tracker(None, ...)` does nothing."""

    def __init__(
        self,
        backend: str | None,
        log_dir: str | None,
        run: str = "",
        project: str | None = None,
        config: dict | None = None,
    ):
        self.backend, self._sink = backend, None
        if backend is None:
            return
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # torch imports tensorboard lazily, here
                raise SystemExit(
                    f"--tracking tensorboard needs the tensorboard package (pip install tensorboard): {exc}"
                ) from None
            self._sink = SummaryWriter(log_dir=log_dir)
        elif backend == "wandb":
            try:
                import wandb
            except ImportError as exc:
                raise SystemExit(f"--tracking wandb needs the wandb package (pip install wandb): {exc}") from None
            self._sink = wandb.init(project=project, name=run or None, dir=log_dir, config=config or {})
        else:
            raise SystemExit(f"--tracking: expected one of {', '.join(BACKENDS)}, found {backend!r}")

    def log(self, step: int, row: dict[str, Any]) -> None:
        """Every numeric column of a step's row (strings as the CSV formats them) except the step."""
        if self._sink is None:
            return
        scalars = {}
        for key, value in row.items():
            if key == "step":
                continue
            try:
                scalars[key] = float(value)
            except (TypeError, ValueError):
                continue
        if self.backend == "tensorboard":
            for key, value in scalars.items():
                self._sink.add_scalar(f"train/{key}", value, step)
            self._sink.flush()
        else:
            self._sink.log({f"train/{key}": value for key, value in scalars.items()}, step=step)

    def close(self) -> None:
        if self._sink is not None:
            (self._sink.close if self.backend == "tensorboard" else self._sink.finish)()
            self._sink = None
