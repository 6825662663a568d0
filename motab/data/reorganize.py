"""Synth file (or a training set's own solutions) -> LLaMA-Factory alpaca data and its dataset_info.json entry.

With --problems instead of --input, the rows of a prepared training set (problems.jsonl) become the
SFT data: instruction = the problem, output = its reference solution (SFT on GSM8K's own solutions,
on OpenThoughts3's traces). Every row must carry a solution.

One row per trajectory, as the MOTAB release's 4-reorganize-*.py (one record per response, the
question and the response text, empty responses included). Every trajectory is kept by default: selecting data is the filter stage's job (synth-filter), so
"SFT on teacher data" and "SFT on filtered teacher CoT" differ exactly by that filter.
--drop-incorrect keeps only rows graded correct (ungraded rows, correct=None, stay).
Rows keep the synth order (sorted by id, sample).
"""

from __future__ import annotations

from pathlib import Path

from motab.commandline import command_parser
from motab.jsonio import DataError, iter_jsonl, require, write_json, write_jsonl


def to_alpaca(path: str, drop_incorrect: bool = False) -> tuple[list[dict], int]:
    rows, dropped = [], 0
    for line, row in iter_jsonl(path):
        correct = require(row, "correct", bool, path, line, nullable=True)
        if correct is False and drop_incorrect:
            dropped += 1
            continue
        rows.append(
            {
                "instruction": require(row, "input", str, path, line),
                "input": "",
                "output": require(row, "output", str, path, line),
            }
        )
    return rows, dropped


def problems_to_alpaca(path: str) -> list[dict]:
    """SFT rows from problems.jsonl: the problem and its reference solution, in id order."""
    rows = []
    for line, row in iter_jsonl(path):
        solution = require(row, "solution", str, path, line, nullable=True)
        if solution is None or not solution.strip():
            raise DataError(
                path,
                line,
                "solution",
                f"SFT on a training set needs each problem's reference solution, found {solution!r}",
            )
        rows.append({"instruction": require(row, "input", str, path, line), "input": "", "output": solution})
    return rows


def dataset_info(name: str, file_name: str) -> dict:
    """The MOTAB release's registration (README, "Dataset Registration"): alpaca, prompt ->
    instruction, response -> output. (Its 4-reorganize-*.py write the question under "input",
    which that registration does not read; here the question is the instruction, as it intends.)"""
    return {name: {"file_name": file_name, "columns": {"prompt": "instruction", "response": "output"}}}


def main(argv: list[str]) -> int:
    parser = command_parser(
        "reorganize",
        __doc__,
        "motab reorganize --input results/toy/synth/motab.jsonl --output-dir sft_data/motab --dataset-name motab",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="synth/{method}.jsonl")
    source.add_argument("--problems", help="a prepared training set (problems.jsonl): SFT on its own solutions")
    parser.add_argument("--output-dir", required=True, help="folder for train.jsonl + dataset_info.json")
    parser.add_argument("--dataset-name", required=True)
    parser.add_argument("--drop-incorrect", action="store_true", help="keep only rows graded correct")
    args = parser.parse_args(argv)
    if args.problems:
        rows, dropped = problems_to_alpaca(args.problems), 0
    else:
        rows, dropped = to_alpaca(args.input, args.drop_incorrect)
    if not rows:
        raise SystemExit(f"{args.input or args.problems}: no usable trajectories ({dropped} graded incorrect)")
    out = Path(args.output_dir)
    write_jsonl(out / "train.jsonl", rows)
    write_json(out / "dataset_info.json", dataset_info(args.dataset_name, "train.jsonl"))
    print(f"{len(rows)} SFT examples ({dropped} incorrect dropped) -> {out}")
    return 0
