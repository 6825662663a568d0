"""`motab grade`: grade any JSONL of {"id", "response", "gold"} lines (any system's outputs).

Writes {"id", "pred", "correct", "reason"} lines in input order and prints a one-line summary.
"""

from __future__ import annotations

import os

from motab.commandline import command_parser, positive_float, positive_int
from motab.grading.equivalence import EQUIVALENCES, Grade, grade_many
from motab.grading.extraction import DEFAULT_MODE, MODES, extract_answer, gold_text
from motab.jsonio import DataError, iter_jsonl, require, write_jsonl


def grade_rows(
    path: str | os.PathLike,
    processes: int = 1,
    timeout_s: float = 5.0,
    extraction: str = DEFAULT_MODE,
    equivalence: str = "motab",
) -> list[dict]:
    """Validated, graded output rows for the input file, in input order.

    Extraction is linear in the response length and each comparison is bounded by `timeout_s`, so
    any file gets a verdict per line in about lines x timeout at worst.
    """
    ids, pairs = [], []
    for line, obj in iter_jsonl(path):
        pid = require(obj, "id", (str, int), path, line)
        response = require(obj, "response", str, path, line, nullable=True)
        gold = require(obj, "gold", (str, int, float), path, line)
        if isinstance(gold, bool):
            raise DataError(path, line, "gold", "expected str/int/float, found bool")
        ids.append(pid)
        pairs.append((extract_answer(response, extraction) if response is not None else None, gold_text(gold)))
    grades: list[Grade] = grade_many(pairs, processes=processes, timeout_s=timeout_s, equivalence=equivalence)
    return [{"id": pid, "pred": g.pred, "correct": g.correct, "reason": g.reason} for pid, g in zip(ids, grades)]


def main(argv: list[str]) -> int:
    parser = command_parser(
        "grade", __doc__.splitlines()[0], "motab grade --input answers.jsonl --output graded.jsonl --processes 4"
    )
    parser.add_argument("--input", required=True, help='JSONL of {"id", "response", "gold"}')
    parser.add_argument("--output", required=True, help='JSONL of {"id", "pred", "correct", "reason"}')
    parser.add_argument("--processes", type=positive_int, default=1, help="grading processes")
    parser.add_argument("--timeout-s", type=positive_float, default=5.0, help="seconds per comparison at most")
    parser.add_argument("--extraction", default=DEFAULT_MODE, choices=MODES, help="answer-extraction mode")
    parser.add_argument("--equivalence", default="motab", choices=sorted(EQUIVALENCES), help="answer comparison")
    args = parser.parse_args(argv)
    rows = grade_rows(
        args.input,
        processes=args.processes,
        timeout_s=args.timeout_s,
        extraction=args.extraction,
        equivalence=args.equivalence,
    )
    write_jsonl(args.output, rows)
    n = len(rows)
    correct = sum(r["correct"] for r in rows)
    accuracy = correct / n if n else 0.0
    counts = {reason: sum(r["reason"] == reason for r in rows) for reason in ("no_answer", "timeout", "error")}
    extra = " ".join(f"{k}={v}" for k, v in counts.items() if v)
    print(
        f"graded n={n} correct={correct} accuracy={accuracy:.4f} extraction={args.extraction} "
        f"equivalence={args.equivalence}" + (f" ({extra})" if extra else "")
    )
    return 0
