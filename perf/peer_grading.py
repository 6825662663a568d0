"""Grading against a plain math-verify loop: motab's grader vs `math_verify.parse` + `verify`, 1 and 2 processes.

    python perf/peer_grading.py [--runs 3 --limit 0 --timeout-s 5]

Same inputs for both: the seeded mix of model answers to the MATH-500 golds from perf/grader.py
(~45% right as written, ~20% right in another form, ~30% wrong, ~5% no answer), each as the text a
model ends with ("So the answer is $\\boxed{...}$." or a sentence without an answer).
- ours: motab.grading.extraction.extract_answer on every text, then equivalence.grade_many (identical and
  plain-number pairs decided without sympy, duplicates judged once, the rest in worker processes with
  a hard per-answer timeout);
- peer: what a user writes without the pipeline: for every pair `verify(parse(gold), parse(text))`
  (gold written as \\boxed{gold}), in this process (1) or a multiprocessing fork Pool (chunks of 10).
Process counts: --processes, by default 1 (per core) and os.cpu_count() (all cores).
Runs interleaved (ours, peer, ours, peer, ...) per process count; worker start-up counted on both
sides. Printed: median seconds and answers/s per side and process count, how many each judged
correct, and the ratio ours/peer of answers/s (above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "perf"))

from grader import mixed_pairs

from motab.data.benchmarks import load_benchmark
from motab.grading import equivalence
from motab.grading.extraction import extract_answer

NO_ANSWER = "I could not finish this one."


def model_texts(golds: list[str], seed: int) -> list[tuple[str, str]]:
    """(model's closing text, gold) pairs rebuilt from the mix generator's extracted answers."""
    return [
        (NO_ANSWER if pred is None else f"So the answer is $\\boxed{{{pred}}}$.", gold)
        for pred, gold in mixed_pairs(golds, seed)
    ]


def ours(texts: list[tuple[str, str]], processes: int, timeout_s: float) -> int:
    grades = equivalence.grade_many(
        [(extract_answer(t), g) for t, g in texts], processes=processes, timeout_s=timeout_s
    )
    return sum(g.correct for g in grades)


def _plain(pair: tuple[str, str]) -> bool:
    from math_verify import parse, verify

    text, gold = pair
    try:
        return bool(verify(parse(f"\\boxed{{{gold}}}"), parse(text)))
    except Exception:  # noqa: BLE001  - a plain loop must survive a bad parse too
        return False


def peer(texts: list[tuple[str, str]], processes: int) -> int:
    if processes == 1:
        return sum(map(_plain, texts))
    with multiprocessing.get_context("fork").Pool(processes, initializer=equivalence._silence_math_verify) as pool:
        return sum(pool.map(_plain, texts, chunksize=10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "math500" / "test.jsonl"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=0, help="first N golds only (0: all 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=sorted({1, os.cpu_count() or 1}),
        help="process counts to measure (default: 1 and every core)",
    )
    args = parser.parse_args(argv)
    import math_verify  # noqa: F401  - loaded once before timing, inherited by forked workers on both sides

    equivalence._silence_math_verify()
    golds = [row["answer"] for row in load_benchmark(args.data, "math500", "math500", count=500)]
    golds = golds[: args.limit] if args.limit else golds
    texts = model_texts(golds, args.seed)
    print(
        f"grading {len(texts)} MATH-500 answers (seeded mix); cpus {os.cpu_count()}; load average "
        f"{os.getloadavg()[0]:.1f}; median of {args.runs} interleaved runs"
    )
    for processes in args.processes:
        times = {"ours": [], "peer": []}
        correct = {}
        for _ in range(args.runs):
            for name in ("ours", "peer"):
                start = time.perf_counter()
                correct[name] = ours(texts, processes, args.timeout_s) if name == "ours" else peer(texts, processes)
                times[name].append(time.perf_counter() - start)
        rates = {}
        for name in ("ours", "peer"):
            seconds = statistics.median(times[name])
            rates[name] = len(texts) / seconds
            print(
                f"{name} processes={processes}: {seconds:7.2f} s  {rates[name]:8.1f} answers/s  "
                f"correct={correct[name]}",
                flush=True,
            )
        print(f"ratio ours/peer processes={processes}: {rates['ours'] / rates['peer']:.2f}x answers/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
