"""A table's spec (the input of `motab tables`) from a study's config.

Published numbers sit in config per (run, benchmark), keyed by run names a user edits (read from
studies/<study>.reference.tsv by motab.plan.compose):

    tables:
      main:
        reference:
          label: "PW-OPSD paper"
          rows: {base_student: {math500: "84.2", aime24: "60.1±1.2", avg: "70.0"}}

The spec carries them keyed by the rows' display labels (what the table prints).
"""

from __future__ import annotations

from collections.abc import Mapping

from motab.errors import UserError
from motab.plan.sweeps import row_runs


class SpecError(UserError):
    """A table entry of config that cannot make a spec; the message names the config key."""


def _row(study_cfg: Mapping, run: str) -> dict:
    """A spec row; with training-seed replicas (train_seeds), the runs the row aggregates over."""
    row = {"run": run, "label": study_cfg["runs"][run].get("label", run)}
    replicas = row_runs(study_cfg, run)
    return row | {"replicas": replicas} if len(replicas) > 1 else row


def table_spec(study: str, study_cfg: Mapping, benchmarks_cfg: Mapping, table: str) -> dict:
    cfg = study_cfg["tables"][table]
    runs = study_cfg["runs"]
    where = f"studies.{study}.tables.{table}"
    for run in cfg["rows"]:
        if run not in runs:
            raise SpecError(f"{where}.rows: {run!r} is not a run of study {study!r} (runs: {sorted(runs)})")
    spec = {
        "title": cfg["title"],
        "metric": cfg["metric"],
        "scale": cfg.get("scale", 100),
        "decimals": cfg.get("decimals", 2),
        "rows": [_row(study_cfg, run) for run in cfg["rows"]],
        "benchmarks": [
            {"name": bench, "label": benchmarks_cfg[bench].get("label", bench)}
            for bench in study_cfg["eval"]["benchmarks"]
        ],
    }
    if cfg.get("note"):
        spec["note"] = cfg["note"]
    reference = cfg.get("reference")
    if reference:
        rows = {}
        names = set(study_cfg["eval"]["benchmarks"]) | {"avg"}
        for run, values in sorted(reference["rows"].items()):
            if run not in cfg["rows"]:
                raise SpecError(f"{where}.reference.rows: {run!r} is not a row of the table (rows: {cfg['rows']})")
            unknown = sorted(set(values) - names)
            if unknown:
                raise SpecError(
                    f"{where}.reference.rows.{run}: {unknown} are not benchmarks of the study's eval "
                    f"nor 'avg' (benchmarks: {study_cfg['eval']['benchmarks']})"
                )
            rows[runs[run].get("label", run)] = dict(sorted(values.items()))
        spec["reference"] = {"label": reference["label"], "rows": rows}
    return spec
