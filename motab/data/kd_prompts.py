"""problems.jsonl -> KDFlow prompt file: {"id", "messages": [{"role": "user", ...}], "answer", "solution"}.

As the MOTAB release's prepare_onpolicy_data.py: the user message is the question stripped of
surrounding whitespace; with --deduplicate, later problems whose (stripped) question repeats an
earlier one are dropped; then --max-samples keeps the first N. Rows in id order (problems.jsonl's).
"""

from __future__ import annotations

from motab.commandline import command_parser
from motab.jsonio import iter_jsonl, require, write_jsonl


def to_prompts(path: str, deduplicate: bool, max_samples: int | None = None) -> list[dict]:
    rows, seen = [], set()
    for line, row in iter_jsonl(path):
        question = require(row, "input", str, path, line).strip()
        if not question or (deduplicate and question in seen):
            continue
        seen.add(question)
        rows.append(
            {
                "id": require(row, "id", str, path, line),
                "messages": [{"role": "user", "content": question}],
                "answer": require(row, "answer", str, path, line),
                "solution": require(row, "solution", str, path, line, nullable=True),
            }
        )
    rows = sorted(rows, key=lambda r: r["id"])
    return rows if max_samples is None else rows[:max_samples]


def main(argv: list[str]) -> int:
    parser = command_parser(
        "kd-prompts",
        __doc__,
        "motab kd-prompts --problems results/toy/data/problems.jsonl --output results/toy/kd_data/toy.jsonl --deduplicate",
    )
    parser.add_argument("--problems", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--deduplicate", action="store_true")
    parser.add_argument("--max-samples", type=int, default=None, help="keep at most this many (after dedup)")
    args = parser.parse_args(argv)
    rows = to_prompts(args.problems, args.deduplicate, args.max_samples)
    write_jsonl(args.output, rows)
    print(f"{len(rows)} prompts -> {args.output}")
    return 0
