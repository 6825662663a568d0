"""Synth file -> LLaMA-Factory alpaca data and its dataset_info.json entry.

Every trajectory is kept by default: selecting data is the filter stage's job (synth-filter), so
"SFT on teacher data" and "SFT on filtered teacher CoT" differ exactly by that filter.
--drop-incorrect keeps only rows graded correct (ungraded rows, correct=None, stay).
Rows keep the synth order (sorted by id, sample).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from motab.jsonio import iter_jsonl, require, write_json, write_jsonl


def to_alpaca(path: str, drop_incorrect: bool = False) -> tuple[list[dict], int]:
    rows, dropped = [], 0
    for line, row in iter_jsonl(path):
        correct = require(row, "correct", bool, path, line, nullable=True)
        if correct is False and drop_incorrect:
            dropped += 1
            continue
        rows.append({"instruction": require(row, "input", str, path, line), "input": "",
                     "output": require(row, "output", str, path, line)})
    return rows, dropped


def dataset_info(name: str, file_name: str) -> dict:
    return {name: {"file_name": file_name, "formatting": "alpaca",
                   "columns": {"prompt": "instruction", "query": "input", "response": "output"}}}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="motab reorganize", description=__doc__)
    parser.add_argument("--input", required=True, help="synth/{method}.jsonl")
    parser.add_argument("--output-dir", required=True, help="folder for train.jsonl + dataset_info.json")
    parser.add_argument("--dataset-name", required=True)
    parser.add_argument("--drop-incorrect", action="store_true", help="keep only rows graded correct")
    args = parser.parse_args(argv)
    rows, dropped = to_alpaca(args.input, args.drop_incorrect)
    if not rows:
        raise SystemExit(f"{args.input}: no usable trajectories ({dropped} graded incorrect)")
    out = Path(args.output_dir)
    write_jsonl(out / "train.jsonl", rows)
    write_json(out / "dataset_info.json", dataset_info(args.dataset_name, "train.jsonl"))
    print(f"{len(rows)} SFT examples ({dropped} incorrect dropped) -> {out}")
    return 0
