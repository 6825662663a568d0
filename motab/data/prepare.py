"""Normalise a training set into problems.jsonl: LIMO-shaped files (question, solution, answer)
by default, or another public release's fields with --format (motab.data.train_formats: gsm8k,
deepmath, openthoughts3, opsd).

Output contract: {"id", "input", "answer", "solution", "source"}, unique ids, sorted by id.
Any bad line stops the stage with file:line:field; nothing is written then.
"""

from __future__ import annotations

import math
from pathlib import Path

from motab.commandline import command_parser
from motab.data.train_formats import READERS, iter_rows
from motab.jsonio import DataError, iter_jsonl, write_jsonl

FORMATS = ("limo", *sorted(READERS))

ID_FIELDS = ("id", "unique_id", "idx")


def _answer_text(value, path, line, field) -> str:
    if isinstance(value, bool) or value is None:
        raise DataError(path, line, field, f"expected a string or number answer, found {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # a hub row's NaN: never a gold "nan"
        raise DataError(path, line, field, f"{value} is not a finite number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # AMC-style 27.0 -> "27"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, line, field, f"expected a non-empty answer, found {value!r:.60}")
    return value.strip()


def normalize_rows(
    path: str,
    source: str,
    question_field: str = "question",
    answer_field: str = "answer",
    solution_field: str = "solution",
    limit: int = 0,
) -> list[dict]:
    rows, seen = [], {}
    for line, raw in iter_jsonl(path):
        question = raw.get(question_field)
        if not isinstance(question, str) or not question.strip():
            raise DataError(path, line, question_field, f"expected a non-empty string, found {question!r:.60}")
        if answer_field not in raw:
            raise DataError(path, line, answer_field, "missing field")
        answer = _answer_text(raw[answer_field], path, line, answer_field)
        solution = raw.get(solution_field)
        if solution is not None and not isinstance(solution, str):
            raise DataError(path, line, solution_field, f"expected a string or null, found {type(solution).__name__}")
        raw_id = next((raw[f] for f in ID_FIELDS if raw.get(f) is not None), None)
        problem_id = f"{source}-{line - 1:05d}" if raw_id is None else str(raw_id)
        if problem_id in seen:
            raise DataError(path, line, "id", f"duplicate id {problem_id!r} (first seen on line {seen[problem_id]})")
        seen[problem_id] = line
        rows.append(
            {"id": problem_id, "input": question.strip(), "answer": answer, "solution": solution, "source": source}
        )
    if not rows:
        raise DataError(path, None, None, "no problems found")
    rows.sort(key=lambda row: row["id"])
    return rows[:limit] if limit else rows


def load_rows(path: str, source: str, fmt: str = "limo", limit: int = 0) -> list[dict]:
    """problems.jsonl rows of a training file in format `fmt`: checked, unique ids, sorted by id."""
    if fmt == "limo":
        return normalize_rows(path, source, limit=limit)
    if fmt not in READERS:
        raise ValueError(f"unknown training-set format {fmt!r} (known: {', '.join(FORMATS)})")
    rows = sorted(iter_rows(path, fmt, source), key=lambda row: row["id"])
    if not rows:
        raise DataError(path, None, None, "no problems found")
    return rows[:limit] if limit else rows


def hub_cache_path(name: str, split: str = "train", revision: str | None = None) -> Path:
    """Where a hub dataset is materialised: one file per (id[:config], split, revision)."""
    pinned = f"@{revision}" if revision else ""
    return Path("results") / "hub_cache" / (name.replace("/", "__").replace(":", "__") + f"{pinned}.{split}.jsonl")


def split_subset(location: str) -> tuple[str, str]:
    """(hub id or folder, configuration) of `owner/name:config` or `<snapshot folder>:config`."""
    head, sep, tail = location.rpartition(":")
    return (head, tail) if sep and tail and "/" not in tail and "\\" not in tail else (location, "")


def load_hub_dataset(name: str, split: str = "train", revision: str | None = None) -> str:
    """Materialise a hub dataset (e.g. GAIR/LIMO) as a local JSONL file and return its path.
    `owner/name:config` names a configuration (Idavidrein/gpqa:gpqa_diamond); split may join
    splits with "+" (the datasets library's syntax: amc22+amc23+amc24); `revision` (config
    `revision:`, a commit sha or tag) pins the dataset's version on the hub. A folder (the hub
    cache's snapshot of the download step, motab.hubcache) is read as it is, with no network."""
    from datasets import load_dataset

    from motab.jobenv import JobError
    from motab.jsonio import write_jsonl as _write

    source, subset = split_subset(name)
    local = Path(source).is_dir()
    out = hub_cache_path(name, split, None if local else revision)
    if not out.exists():
        try:
            rows = load_dataset(source, subset or None, split=split, revision=None if local else revision)
        except (OSError, ConnectionError, ValueError) as exc:  # offline, unknown id, gated, no such split
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise JobError(
                f"{name} (split {split}): cannot be read ({exc.__class__.__name__}: {first}); pin its `revision` "
                "and run `snakemake download` where the hub can be reached, or point `path` at a local copy "
                "(docs/data.md)"
            ) from None
        _write(out, (dict(row) for row in rows))
    return str(out)


def main(argv: list[str]) -> int:
    parser = command_parser(
        "prepare",
        __doc__,
        "motab prepare --input results/toy/raw/train.jsonl --source toy --output results/toy/data/problems.jsonl",
    )
    parser.add_argument("--input", required=True, help="local JSONL file, or a hub dataset id")
    parser.add_argument("--source", required=True, help="dataset name recorded in each row")
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--format",
        default="limo",
        choices=FORMATS,
        help="the release's fields (limo: question/answer/solution, renamable with the --*-field flags)",
    )
    parser.add_argument("--split", default="train", help="hub split when --input is a hub id")
    parser.add_argument("--revision", default=None, help="hub revision (commit sha or tag) when --input is a hub id")
    parser.add_argument("--question-field", default="question")
    parser.add_argument("--answer-field", default="answer")
    parser.add_argument("--solution-field", default="solution")
    parser.add_argument("--limit", type=int, default=0, help="keep the first N problems by id (0 = all)")
    args = parser.parse_args(argv)
    from motab.hublock import resolve

    args.input = resolve(args.input)  # an unpinned hub dataset's lock: the snapshot of its commit
    path = args.input if Path(args.input).is_file() else load_hub_dataset(args.input, args.split, args.revision)
    if args.format == "limo":
        rows = normalize_rows(
            path, args.source, args.question_field, args.answer_field, args.solution_field, args.limit
        )
    else:
        rows = load_rows(path, args.source, args.format, args.limit)
    write_jsonl(args.output, rows)
    print(f"{len(rows)} problems ({args.format}) from {path} -> {args.output}")
    return 0
