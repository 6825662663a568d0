"""Which GPUs each inference server of a job gets.

A job (one synthesis method, one run's evaluation, one critic pass) starts one server per model it
talks to. Each server needs `tp x dp` GPUs (SGLang's --tp-size and --dp-size). By default the
servers of a job get disjoint, consecutive blocks of the job's GPUs in the order given (MOTAB and
SKD: the teacher first, then the student), and the job asks SLURM for exactly their sum, never
more than its stage's budget (`studies.<s>.resources.<stage>.gpus`):

    >>> [p.gpus for p in place([ServerNeed("teacher", "Qwen3-32B", tp=4),
    ...                         ServerNeed("student", "Qwen3-4B", dp=4)], budget=8)]
    [(0, 1, 2, 3), (4, 5, 6, 7)]

With `share: true` the servers share the same GPUs and each gets an equal slice of
SGLANG_MEM_TOTAL as --mem-fraction-static (SGLang's default, about 0.9 for each server alone,
would let only the first start). A budget of 0 GPUs is a CPU job (the toy study): no placement.

Planning calls `place` (rules/common.smk), so a request for more GPUs than the stage has fails at
`snakemake -n` with PlacementError; the job gets the placement as JSON and `launch.serving` turns it
into CUDA_VISIBLE_DEVICES (indices into the job's own CUDA_VISIBLE_DEVICES, which SLURM sets).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from motab.errors import UserError

# The GPU memory fraction that co-located SGLang servers split between them (static weights + KV
# cache); the rest is left for activations and CUDA graphs, as SGLang's own ~0.9 default leaves ~10%.
SGLANG_MEM_TOTAL = 0.85


class PlacementError(UserError):
    """The servers of a job do not fit the GPUs its stage may ask for."""


@dataclass(frozen=True)
class ServerNeed:
    """A server a job starts: its role in the job, the config model it serves and its parallelism."""

    role: str
    model: str
    tp: int = 1
    dp: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.dp


@dataclass(frozen=True)
class Placement:
    """The job-relative GPU indices of one server, and its memory fraction where servers share."""

    role: str
    gpus: tuple[int, ...]
    mem_fraction: float | None = None


def job_gpus(needs: list[ServerNeed], share: bool = False) -> int:
    """GPUs a job of these servers asks for: their sum, or the largest when they share."""
    if not needs:
        return 0
    return max(n.gpus for n in needs) if share else sum(n.gpus for n in needs)


def _describe(needs: list[ServerNeed]) -> str:
    return ", ".join(f"{n.role} {n.model} tp {n.tp} x dp {n.dp} = {n.gpus}" for n in needs)


def place(needs: list[ServerNeed], budget: int, share: bool = False, where: str = "this stage") -> list[Placement]:
    """Placements in the order of `needs`; `budget` is the most GPUs the job may take (0 = a CPU job).

    Raises PlacementError naming `where` (the config key of the budget) when the servers need more."""
    for n in needs:
        if n.tp < 1 or n.dp < 1:
            raise PlacementError(
                f"{where}: {n.role} {n.model}: tp and dp must be at least 1, found tp {n.tp} dp {n.dp}"
            )
    if budget == 0:
        return [Placement(n.role, ()) for n in needs]
    need = job_gpus(needs, share)
    if need > budget:
        how = "sharing GPUs, the largest" if share else "on disjoint GPUs, in all"
        raise PlacementError(
            f"{where}: gpus is {budget}, but the job's servers need {need} ({how}: {_describe(needs)}); "
            f"raise {where} to {need}, lower the models' tp/dp (models.<name>.tp, studies.<study>.serving), "
            + (
                "or let them share GPUs (share_gpus: true)"
                if not share and len(needs) > 1
                else "or use a larger budget"
            )
        )
    if share:
        fraction = round(SGLANG_MEM_TOTAL / len(needs), 3) if len(needs) > 1 else None
        return [Placement(n.role, tuple(range(n.gpus)), fraction) for n in needs]
    placements, start = [], 0
    for n in needs:
        placements.append(Placement(n.role, tuple(range(start, start + n.gpus))))
        start += n.gpus
    return placements


def to_json(placements: list[Placement]) -> str:
    """The placement as the job's command line carries it: {role: {"gpus": [...], "mem_fraction": x}}."""
    return json.dumps(
        {p.role: {"gpus": list(p.gpus), "mem_fraction": p.mem_fraction} for p in placements},
        sort_keys=True,
        separators=(",", ":"),
    )


def from_json(text: str | None) -> dict[str, Placement]:
    """Parse `to_json`'s output (None or "" = no placement: every server sees what the job sees)."""
    if not text:
        return {}
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"placement: expected an object of roles, found {text[:80]!r}")
    out = {}
    for role, spec in raw.items():
        gpus = spec.get("gpus", []) if isinstance(spec, dict) else None
        if not isinstance(gpus, list) or not all(isinstance(g, int) and g >= 0 for g in gpus):
            raise ValueError(f"placement.{role}.gpus: expected a list of GPU indices, found {gpus!r}")
        out[role] = Placement(role, tuple(gpus), spec.get("mem_fraction"))
    return out


def visible_devices(placement: Placement, job_visible: str | None) -> str | None:
    """CUDA_VISIBLE_DEVICES for a server: its job-relative indices mapped onto the job's own
    devices (SLURM's CUDA_VISIBLE_DEVICES, e.g. "4,5,6,7"); None leaves the job's value alone."""
    if not placement.gpus:
        return None
    devices = [d.strip() for d in job_visible.split(",") if d.strip()] if job_visible else None
    if devices is None:
        return ",".join(str(g) for g in placement.gpus)
    missing = [g for g in placement.gpus if g >= len(devices)]
    if missing:
        raise PlacementError(
            f"{placement.role} server: placed on job GPUs {list(placement.gpus)}, but the job "
            f"sees only {len(devices)} (CUDA_VISIBLE_DEVICES={job_visible})"
        )
    return ",".join(devices[g] for g in placement.gpus)


def server_args(command_argv: list[str], placement: Placement) -> list[str]:
    """Extra flags for a server sharing its GPUs: SGLang's --mem-fraction-static (other servers,
    such as the embedded one on CPU, take none), unless the command already sets it."""
    if placement.mem_fraction is None or not any("sglang" in a for a in command_argv):
        return []
    if any(a.startswith("--mem-fraction-static") for a in command_argv):
        return []
    return ["--mem-fraction-static", str(placement.mem_fraction)]


def as_dicts(placements: list[Placement]) -> list[dict]:
    return [asdict(p) for p in placements]
