"""What a study cost, per stage, from the `benchmark:` files its jobs wrote (Snakemake's TSV:
s, h:m:s, max_rss, ..., cpu_time).

`motab cost --study toy [--logs logs] [--gpus-json '{"synth": 4, "eval/teacher/*": 4}']
 [--csv F] [--md F] [--html F]`

Per stage (the folder under logs/<study>/: synth, sft, kd, eval, data, ...): jobs, wall hours,
CPU hours (the benchmark's cpu_time) and GPU hours (wall x the GPUs the job asked for; 0 where
--gpus-json names none, and 0 where the job's log beside its benchmark file says "GPUs used: 0",
as sft and kd-train log on a machine without a GPU: the toy asks SLURM for a GPU but trains on CPU). --gpus-json keys are stage names, or globs on a benchmark file's path
under logs/<study>/ (a key with / or *: the most specific match wins, before the stage's entry), so jobs
of one stage may ask for different GPUs (an eval job asks for its run's model tp). The toy
study asks for no GPUs on a local run: its numbers are CPU hours. A cluster run's GPU hours are
the used ones (wall x GPUs), against the plan's requested ones (perf/plan_cost.py: GPUs x
runtime limit). Peak memory is the largest max_rss (MB) of the stage's jobs. The output is a
function of the benchmark files only (sorted, fixed rounding): the same files give the same bytes.
The workflow writes it per study (rule cost_table: results/<study>/report/cost.{csv,md,html}).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from collections import defaultdict
from pathlib import Path

from motab.commandline import command_parser
from motab.jobenv import GPUS_USED

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


def job_gpus(relative: str, stage: str, gpus: dict[str, int]) -> int:
    """GPUs a job asked for: of the glob keys (those with / or *) matching its benchmark file's path
    under logs/<study>/, the most specific (most characters besides *; key order does not count),
    else its stage's entry, else 0."""
    matches = [key for key in gpus if ("/" in key or "*" in key) and fnmatch.fnmatchcase(relative, key)]
    if matches:
        return gpus[max(matches, key=lambda key: (len(key.replace("*", "")), key))]
    return gpus.get(stage, 0)


def used_gpus(benchmark: Path) -> int | None:
    """The GPUs the job logged it found ("GPUs used: N" in <stem>.log beside <stem>.benchmark.tsv;
    the first such line, a multi-node job logs one per node), or None where it logged none."""
    log = benchmark.with_name(benchmark.name.removesuffix(".benchmark.tsv") + ".log")
    if not log.is_file():
        return None
    with open(log, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(GPUS_USED) and line[len(GPUS_USED) :].strip().isdigit():
                return int(line[len(GPUS_USED) :])
    return None


def cost_rows(study_logs: Path, gpus: dict[str, int] | None = None) -> list[dict]:
    gpus = gpus or {}
    table: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "s": 0.0, "cpu": 0.0, "gpu_s": 0.0, "rss": 0.0})
    for path in sorted(study_logs.rglob("*.benchmark.tsv")):
        bench, stage = read_benchmark(path), stage_of(path, study_logs)
        row = table[stage]
        row["jobs"] += 1
        row["s"] += bench["s"]
        row["cpu"] += bench["cpu_time"]
        asked = job_gpus(path.relative_to(study_logs).as_posix(), stage, gpus)
        row["gpu_s"] += bench["s"] * (asked if used_gpus(path) != 0 else 0)
        row["rss"] = max(row["rss"], bench["max_rss"])
    rows = [
        {
            "stage": stage,
            "jobs": v["jobs"],
            "wall_hours": round(v["s"] / 3600, 4),
            "cpu_hours": round(v["cpu"] / 3600, 4),
            "gpu_hours": round(v["gpu_s"] / 3600, 4),
            "peak_rss_mb": round(v["rss"], 1),
        }
        for stage, v in sorted(table.items())
    ]
    if rows:
        rows.append(
            {
                "stage": "all",
                "jobs": sum(r["jobs"] for r in rows),
                **{key: round(sum(r[key] for r in rows), 4) for key in ("wall_hours", "cpu_hours", "gpu_hours")},
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
            }
        )
    return rows


def to_markdown(rows: list[dict], title: str) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(COLUMNS) + " |", "|---" + "|---:" * (len(COLUMNS) - 1) + "|"]
    lines += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_html(rows: list[dict], title: str) -> str:
    """A standalone HTML page of the cost table: what `snakemake --report` shows when opened."""
    from html import escape

    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(str(row[c]))}</td>" for c in COLUMNS) + "</tr>" for row in rows)
    style = (
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{padding:.3em .8em;text-align:right;border-bottom:1px solid #ddd}"
        "th:first-child,td:first-child{text-align:left}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{style}</style></head><body>\n<h2>{escape(title)}</h2>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n"
        "<p>Hours from the jobs' Snakemake benchmark files; GPU hours = wall x the GPUs each job asked "
        "for, 0 where it asked for none or its log says it found none (a CPU run: CPU hours are the "
        "cost).</p>\n</body></html>\n"
    )


def main(argv: list[str]) -> int:
    parser = command_parser("cost", __doc__.split("\n\n")[0], "motab cost --study toy --logs logs --md cost.md")
    parser.add_argument("--study", required=True)
    parser.add_argument("--logs", default="logs", help="the workflow's logs folder")
    parser.add_argument("--gpus-json", default="{}", help='GPUs per job of each stage, e.g. {"synth": 8, "eval": 1}')
    parser.add_argument("--csv", default=None)
    parser.add_argument("--md", default=None)
    parser.add_argument("--html", default=None, help="the table as an HTML page (the workflow's report)")
    args = parser.parse_args(argv)
    study_logs = Path(args.logs) / args.study
    if not study_logs.is_dir():
        parser.error(f"{study_logs}: no such folder (run the study first)")
    try:
        gpus = json.loads(args.gpus_json)
    except json.JSONDecodeError as exc:
        parser.error(f"--gpus-json: not valid JSON ({exc.msg})")
    if not isinstance(gpus, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in gpus.values()):
        parser.error(f"--gpus-json: expected an object of GPU counts, found {args.gpus_json!r:.200}")
    rows = cost_rows(study_logs, gpus)
    if not rows:
        parser.error(f"{study_logs}: no *.benchmark.tsv files")
    title = f"Cost of study {args.study} (from {study_logs}/**/*.benchmark.tsv)"
    markdown = to_markdown(rows, title)
    print(markdown, end="")
    if args.md:
        Path(args.md).write_text(markdown, encoding="utf-8")
    if args.html:
        Path(args.html).write_text(to_html(rows, title), encoding="utf-8")
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    return 0
