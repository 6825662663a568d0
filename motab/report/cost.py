"""What a study cost, per stage, from the `benchmark:` files its jobs wrote (Snakemake's TSV:
s, h:m:s, max_rss, ..., cpu_time).

`python -m motab cost --study toy [--logs logs] [--gpus-json '{"synth": 4, ...}'] [--csv F] [--md F]`

Per stage (the folder under logs/<study>/: synth, sft, kd, eval, data, ...): jobs, wall hours,
CPU hours (the benchmark's cpu_time) and GPU hours (wall x the GPUs each job of the stage asked
for, from --gpus-json; 0 where none is given). The toy study's numbers are CPU hours; a cluster
run's GPU hours are the used ones (wall x GPUs), against the plan's requested ones
(benchmarks/plan_cost.py). Peak memory is the largest max_rss (MB) of the stage's jobs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections import defaultdict
from pathlib import Path

COLUMNS = ("stage", "jobs", "wall_hours", "cpu_hours", "gpu_hours", "peak_rss_mb")


def read_benchmark(path: Path) -> dict:
    """One Snakemake benchmark file: its first data row (one repeat), as numbers where they are."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no header with s)")

    def number(key: str) -> float:
        value = rows[0].get(key, "")
        try:
            return float(value)
        except ValueError:
            return 0.0  # Snakemake writes "-" where it could not measure

    return {"s": number("s"), "cpu_time": number("cpu_time"), "max_rss": number("max_rss")}


def stage_of(path: Path, study_logs: Path) -> str:
    """The stage of a benchmark file: its first folder under logs/<study>/ (or the file's own stem)."""
    parts = path.relative_to(study_logs).parts
    return parts[0] if len(parts) > 1 else path.name.split(".")[0]


def cost_rows(study_logs: Path, gpus: dict[str, int] | None = None) -> list[dict]:
    gpus = gpus or {}
    table: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "cpu": 0.0, "gpu_s": 0.0, "rss": 0.0})
    for path in sorted(study_logs.rglob("*.benchmark.tsv")):
        bench, stage = read_benchmark(path), stage_of(path, study_logs)
        row = table[stage]
        row["jobs"] += 1
        row["s"] += bench["s"]
        row["cpu"] += bench["cpu_time"]
        row["gpu_s"] += bench["s"] * gpus.get(stage, 0)
        row["rss"] = max(row["rss"], bench["max_rss"])
    rows = [{"stage": stage, "jobs": v["jobs"], "wall_hours": round(v["s"] / 3600, 4),
             "cpu_hours": round(v["cpu"] / 3600, 4), "gpu_hours": round(v["gpu_s"] / 3600, 4),
             "peak_rss_mb": round(v["rss"], 1)} for stage, v in sorted(table.items())]
    if rows:
        rows.append({"stage": "all", "jobs": sum(r["jobs"] for r in rows),
                     **{key: round(sum(r[key] for r in rows), 4) for key in ("wall_hours", "cpu_hours", "gpu_hours")},
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)})
    return rows


def to_markdown(rows: list[dict], title: str) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(COLUMNS) + " |", "|---" + "|---:" * (len(COLUMNS) - 1) + "|"]
    lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="motab cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--logs", default="logs", help="the workflow's logs folder")
    parser.add_argument("--gpus-json", default="{}", help='GPUs per job of each stage, e.g. {"synth": 8, "eval": 1}')
    parser.add_argument("--csv", default=None)
    parser.add_argument("--md", default=None)
    args = parser.parse_args(argv)
    study_logs = Path(args.logs) / args.study
    if not study_logs.is_dir():
        parser.error(f"{study_logs}: no such folder (run the study first)")
    rows = cost_rows(study_logs, json.loads(args.gpus_json))
    if not rows:
        parser.error(f"{study_logs}: no *.benchmark.tsv files")
    markdown = to_markdown(rows, f"Cost of study {args.study} (from {study_logs}/**/*.benchmark.tsv)")
    print(markdown, end="")
    if args.md:
        Path(args.md).write_text(markdown, encoding="utf-8")
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
    return 0
