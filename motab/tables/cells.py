"""The numbers of a table: a cell's mean ± std over seeds (or training seeds) and the rendered
row (Line), shared by the table builder (build.py) and its renderers (render.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from motab.errors import UserError

SINGLE_SEED_MARK = "†"


class TableError(UserError):
    """A spec or set of evals that cannot make a table; the message names what is wrong."""


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float | None  # None with a single seed
    seeds: int
    train_seeds: int = 1  # >1: std is across training seeds (each the mean over `seeds` eval seeds)

    def count_text(self) -> str:
        return str(self.seeds) if self.train_seeds == 1 else f"{self.train_seeds}x{self.seeds}"


@dataclass(frozen=True)
class Spec:
    title: str
    metric: str
    scale: float
    decimals: int
    rows: list[dict]
    benchmarks: list[dict]
    extra_columns: list[dict]
    reference: dict | None
    note: str = ""  # a line under the table (a rehearsal's substitutions)


def aggregate(seed_values: dict, scale: float) -> Cell:
    """Mean and sample std (ddof=1) of the scaled values, in seed order, summed exactly. Keys
    (replica, seed): the mean over all values, the std across the replicas' means."""
    if seed_values and isinstance(next(iter(seed_values)), tuple):
        return _aggregate_replicas(seed_values, scale)
    xs = [seed_values[s] * scale for s in sorted(seed_values)]
    mean = math.fsum(xs) / len(xs)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return Cell(mean, std, len(xs))


def _aggregate_replicas(values: dict[tuple[int, int], float], scale: float) -> Cell:
    by_replica: dict[int, list[float]] = {}
    for replica, seed in sorted(values):
        by_replica.setdefault(replica, []).append(values[(replica, seed)] * scale)
    means = [math.fsum(xs) / len(xs) for xs in by_replica.values()]
    mean = math.fsum(x for xs in by_replica.values() for x in xs) / len(values)
    std = (
        math.sqrt(math.fsum((m - math.fsum(means) / len(means)) ** 2 for m in means) / (len(means) - 1))
        if len(means) > 1
        else None
    )
    eval_seeds = sorted({len(xs) for xs in by_replica.values()})
    return Cell(mean, std, eval_seeds[0] if len(eval_seeds) == 1 else len(values), len(means))


def fmt(x: float, decimals: int, sign: bool = False) -> str:
    text = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    if float(text) == 0:  # no "-0.00"
        text = ("+" if sign else "") + f"{0:.{decimals}f}"
    return text


@dataclass(frozen=True)
class Line:
    """One table row, ready to render: per benchmark (mean, std, seeds) texts, then Avg and extras."""

    label: str
    cells: list[tuple[str, str, str]]  # (mean, std or "", seeds or "")
    avg: str
    extras: list[str]
    kind: str  # "ours" | "reference" | "difference"
