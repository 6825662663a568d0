"""Grading throughput on the MATH-500 gold set (1 and 2 worker processes) and the worst case of an
adversarial answer, through the pipeline's own grader (motab.grading.equivalence.grade_many).

    python perf/grader.py [--runs 3 --timeout-s 5]

Workloads (each answer written as a model would, "... so the answer is $\\boxed{gold}$", then
extracted as eval-grade does):
- self:    every gold against itself through grade_many (identical strings are decided by its
           shortcut without sympy: what a correct, identically written answer costs);
- self-verify: every gold against itself through math-verify alone (equivalence.math_equal, no
           shortcut) in a multiprocessing pool of 1 / 2 processes: what a correct answer written
           differently costs;
- shifted: problem i's gold against problem i+1's gold (almost all wrong, all through
           math-verify's parse + verify: what a wrong answer costs);
- mix:     a realistic mix of model answers to MATH-500 (seeded): ~45% the gold as written, ~20% the
           gold in another form (\\dfrac for \\frac, "x.0" for x, spaces added), ~30% another
           problem's gold (wrong), ~5% no answer at all;
- adversarial: a power tower 9^{9^{9^{9^{9^{9}}}}} against "5" plus 9 ordinary answers; its time
           is bounded by the per-answer timeout (the soft limit, then the parent kills the worker
           HARD_GRACE_S later).
Printed: the median over --runs of wall time, answers/s and answers/s per worker process (per
core), per workload and process count, with the 2-process / 1-process speed ratio, the adversarial
batch's median and worst wall time, and the extraction time of a 1 MB repetition loop per mode.
Worker start-up is inside the timings (a grading job pays it too).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from motab.data.benchmarks import load_benchmark
from motab.grading import equivalence
from motab.grading.extraction import MODES, extract_answer

TOWER = "9^{9^{9^{9^{9^{9}}}}}"


def pairs_for(golds: list[str], shift: int) -> list[tuple[str | None, str]]:
    return [
        (
            extract_answer(f"Putting it together, so the answer is $\\boxed{{{golds[(i + shift) % len(golds)]}}}$."),
            golds[i],
        )
        for i in range(len(golds))
    ]


def mixed_pairs(golds: list[str], seed: int) -> list[tuple[str | None, str]]:
    """Model-like answers: right as written, right in another form, wrong, or none (see the docstring)."""
    rng = random.Random(seed)
    pairs = []
    for i, gold in enumerate(golds):
        r = rng.random()
        if r < 0.45:
            answer = gold
        elif r < 0.65:
            answer = (
                gold.replace("\\frac", "\\dfrac")
                if "\\frac" in gold
                else (gold + ".0" if gold.isdigit() else " ".join(gold))
            )
        elif r < 0.95:
            answer = golds[(i + 1 + rng.randrange(len(golds) - 1)) % len(golds)]
        else:
            pairs.append((extract_answer("I could not finish this one."), gold))
            continue
        pairs.append((extract_answer(f"So the answer is $\\boxed{{{answer}}}$."), gold))
    return pairs


def report(name: str, pairs, processes: int, seconds: float, grades) -> None:
    reasons = {r: sum(g.reason == r for g in grades) for r in equivalence.REASONS}
    shown = " ".join(f"{r}={n}" for r, n in reasons.items() if n)
    rate = len(pairs) / seconds
    print(
        f"{name:11s} processes={processes}: {seconds:6.2f} s  {rate:7.1f} answers/s  "
        f"{rate / processes:7.1f} per core  ({shown})"
    )


def timed(pairs, processes: int, timeout_s: float, runs: int) -> tuple[float, list, float]:
    times, grades = [], None
    for _ in range(runs):
        start = time.perf_counter()
        grades = equivalence.grade_many(pairs, processes=processes, timeout_s=timeout_s)
        times.append(time.perf_counter() - start)
    return statistics.median(times), grades, max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "math500" / "test.jsonl"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=0, help="first N golds only (0: all 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mixed workload")
    args = parser.parse_args()
    golds = [row["answer"] for row in load_benchmark(args.data, "math500", "math500", count=500)]
    print(
        f"MATH-500 golds: {len(golds)}; cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; "
        f"timeout {args.timeout_s} s; median of {args.runs} runs"
    )
    golds = golds[: args.limit] if args.limit else golds
    workloads = [
        ("self", pairs_for(golds, 0)),
        ("shifted", pairs_for(golds, 1)),
        ("mix", mixed_pairs(golds, args.seed)),
    ]
    for name, pairs in workloads:
        medians = {}
        for processes in (1, 2):
            seconds, grades, _ = timed(pairs, processes, args.timeout_s, args.runs)
            medians[processes] = seconds
            report(name, pairs, processes, seconds, grades)
        print(f"{name:11s} speed-up 2 vs 1 process: {medians[1] / medians[2]:.2f}x")
    import multiprocessing

    medians = {}
    for processes in (1, 2):
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            with multiprocessing.get_context("fork").Pool(
                processes, initializer=equivalence._silence_math_verify
            ) as pool:
                verdicts = pool.starmap(equivalence.math_equal, [(g, g) for g in golds], chunksize=10)
            times.append(time.perf_counter() - start)
        medians[processes] = statistics.median(times)
        rate = len(golds) / medians[processes]
        print(
            f"self-verify processes={processes}: {medians[processes]:6.2f} s  {rate:7.1f} answers/s  "
            f"{rate / processes:7.1f} per core  (correct={sum(verdicts)})"
        )
    print(f"self-verify speed-up 2 vs 1 process: {medians[1] / medians[2]:.2f}x")
    ordinary = pairs_for(golds[:9], 0)
    for processes in (1, 2):
        seconds, grades, worst = timed([(TOWER, "5")] + ordinary, processes, args.timeout_s, args.runs)
        print(
            f"adversarial processes={processes}: median {seconds:.2f} s, worst {worst:.2f} s for 1 tower + 9 answers "
            f"(tower: {grades[0].reason}; bound: timeout {args.timeout_s} s + grace {equivalence.HARD_GRACE_S} s)"
        )
    loop = "\\boxed{" * (1_000_000 // len("\\boxed{"))
    for mode in MODES:
        start = time.perf_counter()
        extract_answer(loop, mode)
        print(f"extraction of a 1 MB '\\boxed{{' loop, {mode:10s}: {time.perf_counter() - start:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
