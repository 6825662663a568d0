"""problems.jsonl -> KDFlow prompt file: {"id", "messages": [{"role": "user", ...}], "answer", "solution"}.

With --deduplicate, later problems whose question text repeats an earlier one are dropped, as
the seed's prepare_onpolicy_data does.
"""

from __future__ import annotations

import argparse

from motab.jsonio import iter_jsonl, require, write_jsonl


def to_prompts(path: str, deduplicate: bool) -> list[dict]:
    rows, seen = [], set()
    for line, row in iter_jsonl(path):
        question = require(row, "input", str, path, line)
        if deduplicate and question.strip() in seen:
            continue
        seen.add(question.strip())
        rows.append({"id": require(row, "id", str, path, line),
                     "messages": [{"role": "user", "content": question}],
                     "answer": require(row, "answer", str, path, line),
                     "solution": require(row, "solution", str, path, line, nullable=True)})
    return sorted(rows, key=lambda r: r["id"])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="motab kd-prompts", description=__doc__)
    parser.add_argument("--problems", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--deduplicate", action="store_true")
    args = parser.parse_args(argv)
    rows = to_prompts(args.problems, args.deduplicate)
    write_jsonl(args.output, rows)
    print(f"{len(rows)} prompts -> {args.output}")
    return 0
