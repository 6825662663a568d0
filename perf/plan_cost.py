"""Jobs and GPU-hours the SLURM plan requests, per study and rule (`snakemake -n`, nothing runs).

    python perf/plan_cost.py [--csv results/plan_cost.csv] [-- extra snakemake args]

GPU-hours requested = the job's gpu x its runtime limit (minutes / 60): what SLURM reserves, an
upper bound on what the job uses. Run from the repository root. paper_plan_cost.csv beside this
script is its output for the paper studies (the slurm profile); paper_plan_cost.before.csv the same
at 2630ee4, before one eval server per run and per-model GPU counts."""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def plan_jobs(extra: list[str]) -> list[dict]:
    """(rule, study, gpu, runtime) of each planned job of `snakemake -n --profile profiles/slurm all`."""
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--profile", "profiles/slurm", "all", *extra], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    jobs = []
    for block in proc.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0].strip()
        if rule == "download_hub":  # the login node's download step (localrules), planned only where the cache lacks it
            continue
        study = re.search(r"wildcards: .*?\bstudy=([\w.-]+)", block)
        resources = re.search(r"resources: (.*)", block)
        fields = dict(re.findall(r"(\w+)=([^,]+)", resources.group(1))) if resources else {}
        jobs.append(
            {
                "rule": rule,
                "study": study.group(1) if study else "",
                "gpu": int(fields.get("gpu", 0) or 0),
                "runtime": int(fields.get("runtime", 0) or 0),
            }
        )
    return jobs


def cost_rows(jobs: list[dict]) -> list[dict]:
    table: dict[tuple[str, str], dict] = defaultdict(lambda: {"jobs": 0, "gpu_hours": 0.0})
    for job in jobs:
        row = table[(job["study"], job["rule"])]
        row["jobs"] += 1
        row["gpu_hours"] += job["gpu"] * job["runtime"] / 60
    return [
        {"study": s, "rule": r, "jobs": v["jobs"], "gpu_hours_requested": round(v["gpu_hours"], 1)}
        for (s, r), v in sorted(table.items())
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", default=None)
    parser.add_argument("extra", nargs="*", help="more snakemake arguments (after --)")
    args = parser.parse_args(argv)
    rows = cost_rows(plan_jobs(args.extra))
    print("| study | rule | jobs | GPU-hours requested |\n|---|---|---:|---:|")
    for row in rows:
        print(f"| {row['study']} | {row['rule']} | {row['jobs']} | {row['gpu_hours_requested']:.1f} |")
    total_jobs, total = sum(r["jobs"] for r in rows), sum(r["gpu_hours_requested"] for r in rows)
    print(f"| all | all | {total_jobs} | {total:.1f} |")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
