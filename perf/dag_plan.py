"""How long Snakemake takes to plan the cluster studies, as a user runs it.

    python perf/dag_plan.py [--repeats 3] [--students 4] [--seeds 5] [--extra-benchmarks 1]

Times `snakemake -n --profile profiles/slurm all` (the paper studies the slurm profile selects),
then the same command on a synthetic grid made from config overrides only: more students (each
with its base, SFT-per-synthesis-method and SFT+KD runs), more benchmarks and more eval seeds,
>= 1,000 jobs. Prints the median wall time of each (whole command: start-up, parsing, DAG), its
CPU time (user + system of the snakemake process: what the wall time is on an idle machine) and
the job counts. Targets from the issue: <= 10 s for the paper studies, <= 30 s for the grid.

The SLURM executor plugin runs `scontrol show config` at start-up (a 10 s timeout). Where scontrol
is installed but no controller answers, that probe alone costs ~9 s of every plan's wall time, so it
is timed once on its own first and printed (with whether a controller answered): a plan's wall time
minus the probe is what planning costs on a cluster whose controller answers at once.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
METHODS = ("teacher_only", "teacher_only.filtered", "motab", "skd")


def grid_overrides(config: dict, students: int, seeds: int, extra_benchmarks: int) -> dict:
    """The motab study with `students` hub students, every synthesis method, KD, more benchmarks and seeds."""
    study = config["studies"]["motab"]
    # 4B students, as the study's own (the plan's GPU-memory check needs each model's size)
    models = {
        f"Student-{i}": {
            "source": "hub",
            "path": f"org/student-{i}",
            "tp": 1,
            "params_b": 4.02,
            "context_length": 40960,
        }
        for i in range(students)
    }
    base_benchmarks = list(study["eval"]["benchmarks"])
    benchmarks = {
        f"{name}_copy{j}": dict(config["benchmarks"][name])
        for j in range(extra_benchmarks)
        for name in base_benchmarks[:1]
    }
    runs = {"teacher": study["runs"]["teacher"]}
    for student in models:
        runs[f"base_{student}"] = {"model": student}
        for method in METHODS:
            runs[f"sft_{method.replace('.', '_')}_{student}"] = {"sft": method, "from": student}
        runs[f"kd_{student}"] = {"kd": "rkl", "from": f"sft_teacher_only_{student}"}
    return {
        "models": models,
        "benchmarks": benchmarks,
        "studies": {
            "motab": {
                "runs": runs,
                "eval": {"benchmarks": base_benchmarks + sorted(benchmarks), "seeds": list(range(seeds))},
                "tables": {"main": {"rows": sorted(runs)}},
            }
        },
    }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plan(extra_configfile: Path | None) -> tuple[float, float, int]:
    args = [SNAKEMAKE, "-n", "--profile", "profiles/slurm", "all"]
    if extra_configfile:
        args += ["--configfile", "config.yaml", str(extra_configfile)]
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    match = re.search(r"^total\s+(\d+)$", proc.stdout, re.M)
    # the cluster's jobs: the download step runs on the login node, and only where the cache lacks a snapshot
    downloads = re.search(r"^download_hub\s+(\d+)$", proc.stdout, re.M)
    return seconds, cpu, (int(match.group(1)) if match else 0) - (int(downloads.group(1)) if downloads else 0)


def scontrol_probe() -> tuple[float, str]:
    """Time `scontrol show config` as the plugin runs it at start-up; say whether a controller answered."""
    if shutil.which("scontrol") is None:
        return 0.0, "scontrol not installed: the plugin's start-up probe costs nothing here"
    start = time.perf_counter()
    try:
        proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=10, check=False)
        answered = proc.returncode == 0
    except subprocess.TimeoutExpired:
        answered = False
    seconds = time.perf_counter() - start
    state = "a controller answered" if answered else "no controller answered"
    return seconds, f"scontrol show config (the plugin's start-up probe): {seconds:.2f} s, {state}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--students", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--extra-benchmarks", type=int, default=1)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config.yaml").read_text())  # the catalogue (benchmarks)
    config["studies"] = yaml.safe_load((REPO / "studies" / "motab.yaml").read_text())["studies"]
    probe, line = scontrol_probe()
    print(line)
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.yaml"
        grid.write_text(yaml.safe_dump(grid_overrides(config, args.students, args.seeds, args.extra_benchmarks)))
        for name, extra, target in (("paper studies (profiles/slurm)", None, 10.0), ("synthetic grid", grid, 30.0)):
            results = [plan(extra) for _ in range(args.repeats)]
            times, cpus, jobs = [r[0] for r in results], [r[1] for r in results], results[0][2]
            print(
                f"{name:32s} {jobs:6d} jobs  wall median {statistics.median(times):6.2f} s"
                f" (min {min(times):.2f}, max {max(times):.2f}; {args.repeats} runs),"
                f" {statistics.median(times) - probe:6.2f} s without the probe"
                f"  CPU median {statistics.median(cpus):6.2f} s  target <= {target:.0f} s"
            )


if __name__ == "__main__":
    main()
