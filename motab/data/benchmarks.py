"""Benchmark loaders: each public benchmark file, checked, into problems.jsonl rows.

    motab benchmark --input FILE|HUB_ID --format math500 --name math500 --count 500
        --output results/<study>/benchmarks/math500.jsonl [--limit N] [--split test]

A format names the fields a benchmark's file carries (the public release's own names) and how
the gold answer is read; every line is checked (field present, type, non-empty answer) and the
number of problems must equal `--count` (config's `count`), so a truncated or wrong file stops
the stage with file:line:field instead of giving a table over the wrong problem set.

Formats (fields as in the files under ../shared/data, see its README):
- math500: problem, answer, solution, subject, level, unique_id (id = unique_id)
- aime:    problem, answer (integer 0..999 as text or number); id when present (AIME 2024 carries it)
- amc23:   id, problem, answer (a number, 27.0 for 27)
- gsm8k:   question, answer = reasoning ending "#### N" (gold = N, commas dropped; solution = reasoning)
- hmmt25:  problem, answer; problem_idx or id when present (MathArena's HMMT February 2025 release)
- amc:     problem, answer, year (EvalScope's `amc`: AMC 2022-24, evalscope/amc_22-24); url, solution optional
- gpqa_diamond: Question, Correct Answer, Incorrect Answer 1-3 (motab.data.gpqa:
           choices shuffled by EvalScope's seeded rule, gold = the correct letter)
- generic: --question-field / --answer-field (the toy test split, other LIMO-shaped files)
Output: {"id", "input", "answer", "solution", "source"}, sorted by id (ids from the file, else
"<name>-<line-1:05d>").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from motab.commandline import command_parser
from motab.data.gpqa import load_gpqa
from motab.jsonio import DataError, iter_jsonl, write_jsonl


@dataclass(frozen=True)
class Format:
    question: str
    answer: str
    required: tuple[str, ...]  # fields every line must carry (question and answer included)
    ids: tuple[str, ...]  # id fields, first present wins
    answer_kind: str  # "text" | "number" | "integer" | "gsm8k"
    solution: str | None = None


FORMATS: dict[str, Format] = {
    "math500": Format(
        "problem",
        "answer",
        ("problem", "answer", "solution", "subject", "level", "unique_id"),
        ("unique_id",),
        "text",
        "solution",
    ),
    "aime": Format("problem", "answer", ("problem", "answer"), ("id",), "integer", "solution"),
    "amc23": Format("problem", "answer", ("id", "problem", "answer"), ("id",), "number"),
    "gsm8k": Format("question", "answer", ("question", "answer"), (), "gsm8k"),
    "amc": Format("problem", "answer", ("problem", "answer", "year"), ("id",), "text", "solution"),
    "hmmt25": Format("problem", "answer", ("problem", "answer"), ("problem_idx", "id"), "text", "solution"),
}
MULTIPLE_CHOICE = "gpqa_diamond"  # read by motab.data.gpqa
_GSM8K_RE = re.compile(r"####\s*(\S[^\n]*?)\s*$")


def _answer(value, kind: str, path, line: int, field: str) -> tuple[str, str | None]:
    """(gold answer text, solution text from the answer field or None)."""
    if kind == "gsm8k":
        if not isinstance(value, str):
            raise DataError(path, line, field, f"expected a reasoning string ending '#### N', found {value!r:.60}")
        match = _GSM8K_RE.search(value)
        if not match:
            raise DataError(path, line, field, f"expected a final line '#### N', found {value[-60:]!r}")
        return match.group(1).replace(",", ""), value[: match.start()].rstrip()
    if isinstance(value, bool) or value is None:
        raise DataError(path, line, field, f"expected a string or number answer, found {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # a hub row's NaN: never a gold "nan"
        raise DataError(path, line, field, f"{value} is not a finite number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # AMC stores 27.0 for 27
    if kind in ("number", "integer") and isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"-?\d+(\.\d+)?", text):
            raise DataError(path, line, field, f"expected a number, found {value!r:.60}")
        value = text
    if kind == "integer" and not re.fullmatch(r"-?\d+", str(value)):
        raise DataError(path, line, field, f"expected an integer answer, found {value!r}")
    if isinstance(value, (int, float)):
        return str(value), None
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, line, field, f"expected a non-empty answer, found {value!r:.60}")
    return value.strip(), None


def load_benchmark(
    path: str | Path,
    fmt: str,
    name: str,
    count: int = 0,
    limit: int = 0,
    question_field: str = "question",
    answer_field: str = "answer",
) -> list[dict]:
    """Checked problems.jsonl rows of a benchmark file; count > 0 demands exactly that many lines."""
    if fmt == MULTIPLE_CHOICE:
        return load_gpqa(path, name, count, limit)
    if fmt == "generic":
        spec = Format(
            question_field, answer_field, (question_field, answer_field), ("id", "unique_id", "idx"), "text", "solution"
        )
    elif fmt in FORMATS:
        spec = FORMATS[fmt]
    else:
        raise ValueError(f"unknown benchmark format {fmt!r} (known: generic, {', '.join(sorted(FORMATS))})")
    rows, seen = [], {}
    last_line = 0
    for line, raw in iter_jsonl(path):
        last_line = line
        for field in spec.required:
            if field not in raw:
                raise DataError(path, line, field, f"missing field (a {fmt} line has {', '.join(spec.required)})")
        question = raw[spec.question]
        if not isinstance(question, str) or not question.strip():
            raise DataError(path, line, spec.question, f"expected a non-empty string, found {question!r:.60}")
        answer, solution = _answer(raw[spec.answer], spec.answer_kind, path, line, spec.answer)
        if solution is None and spec.solution is not None:
            solution = raw.get(spec.solution)
            if solution is not None and not isinstance(solution, str):
                raise DataError(
                    path, line, spec.solution, f"expected a string or null, found {type(solution).__name__}"
                )
        raw_id = next((raw[f] for f in spec.ids if raw.get(f) is not None), None)
        if isinstance(raw_id, (bool, dict, list)):
            raise DataError(path, line, spec.ids[0], f"expected a string or integer id, found {raw_id!r:.60}")
        problem_id = f"{name}-{line - 1:05d}" if raw_id is None else str(raw_id)
        if problem_id in seen:
            raise DataError(path, line, "id", f"duplicate id {problem_id!r} (first seen on line {seen[problem_id]})")
        seen[problem_id] = line
        rows.append(
            {"id": problem_id, "input": question.strip(), "answer": answer, "solution": solution, "source": name}
        )
    if not rows:
        raise DataError(path, None, None, "no problems found")
    if count and len(rows) != count:
        raise DataError(path, last_line, None, f"expected {count} {name} problems (config `count`), found {len(rows)}")
    rows.sort(key=lambda row: row["id"])
    return rows[:limit] if limit else rows


def main(argv: list[str]) -> int:
    parser = command_parser(
        "benchmark",
        __doc__.split("\n\n")[0],
        "motab benchmark --input results/toy/raw/test.jsonl --format generic --name toy_test --output results/toy/benchmarks/toy_test.jsonl",
    )
    parser.add_argument("--input", required=True, help="local JSONL file, or a hub dataset id")
    parser.add_argument("--format", required=True, choices=["generic", MULTIPLE_CHOICE, *sorted(FORMATS)])
    parser.add_argument("--name", required=True, help="benchmark name (row source, default id prefix)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--count", type=int, default=0, help="expected number of problems (0: no check)")
    parser.add_argument("--limit", type=int, default=0, help="keep the first N problems by id (0 = all)")
    parser.add_argument("--split", default="test", help="hub split when --input is a hub id")
    parser.add_argument("--revision", default=None, help="hub revision (commit sha or tag) when --input is a hub id")
    parser.add_argument("--question-field", default="question", help="generic format only")
    parser.add_argument("--answer-field", default="answer", help="generic format only")
    args = parser.parse_args(argv)
    from motab.data.prepare import split_subset
    from motab.hublock import resolve

    path = args.input = resolve(args.input)  # an unpinned hub benchmark's lock: its commit's snapshot

    if not Path(path).is_file():
        if not Path(split_subset(path)[0]).is_dir() and (
            path.endswith((".jsonl", ".json")) or path.startswith((".", "/"))
        ):
            raise SystemExit(
                f"{path}: benchmark file not found (config `path` of benchmark {args.name!r}; "
                "a hub id looks like owner/name)"
            )
        from motab.data.prepare import load_hub_dataset

        path = load_hub_dataset(args.input, split=args.split, revision=args.revision)
    rows = load_benchmark(path, args.format, args.name, args.count, args.limit, args.question_field, args.answer_field)
    write_jsonl(args.output, rows)
    print(f"{len(rows)} {args.name} problems ({args.format}) from {path} -> {args.output}")
    return 0
