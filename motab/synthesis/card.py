"""A data card for one synthesized dataset: what a reader should know before training on it.

    python -m motab data-card --rows synth/motab.jsonl --problems data/problems.jsonl \\
        --tokenizer results/toy/models/toy-student --cutoff-len 256 --eval-max-tokens 48 \\
        --json synth/motab.card.json --md report/cards/motab.md

It reports the rows, how often they end in the right answer (graded as eval grades), who wrote
the tokens (teacher share), the step loops' decisions (MOTAB's accepted/rejected student steps and
breaches, SKD's teacher take-overs), how each row ended, and the rows' lengths in the SFT student's
tokens against the two budgets that can cut them: SFT's cutoff_len (prompt + response) and the
eval's max_tokens (a student that learned rows longer than it is cut before its answer). A budget
that cuts rows gets a warning line.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter
from pathlib import Path

from motab.commandline import command_parser
from motab.grading.equivalence import grade_many
from motab.grading.extraction import extract_answer
from motab.jsonio import read_jsonl, write_json
from motab.provenance import provenance


def length_summary(lengths: list[int]) -> dict:
    """Median, 90th percentile (nearest rank) and maximum of token counts."""
    if not lengths:
        return {"median": None, "p90": None, "max": None}
    ordered = sorted(lengths)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {"median": statistics.median(ordered), "p90": p90, "max": ordered[-1]}


def step_summary(rows: list[dict]) -> dict:
    """The step loops' decisions, from each row's stats (zeros for one-shot teacher rows)."""
    stats = [row["stats"] for row in rows]
    accepted = sum(s.get("accepted_steps", 0) for s in stats)
    rejected = sum(s.get("rejected_steps", 0) for s in stats)
    summary = {
        "accepted_student_steps": accepted,
        "rejected_student_steps": rejected,
        "acceptance": round(accepted / (accepted + rejected), 6) if accepted + rejected else None,
        # MOTAB: one breach ends a row's student part; SKD: each rejected block is a teacher take-over
        "rows_with_teacher_takeover": sum(1 for s in stats if s.get("rejected_steps", 0) > 0),
    }
    if any("breach" in s for s in stats):
        breached = [s for s in stats if s.get("breach")]
        summary["breach_rows"] = len(breached)
        summary["bifurcation_step_median"] = (
            statistics.median(s["bifurcation_step"] for s in breached) if breached else None
        )
    return summary


def budget_warnings(cuts: dict[str, int], rows: int, cutoff_len: int | None, eval_max_tokens: int | None) -> list[str]:
    warnings = []
    if cuts["eval_max_tokens"]:
        warnings.append(
            f"eval max_tokens {eval_max_tokens} is shorter than {cuts['eval_max_tokens']} of {rows} responses: "
            "a student that learned them is cut before its answer"
        )
    if cuts["sft_cutoff_len"]:
        warnings.append(
            f"SFT cutoff_len {cutoff_len} truncates {cuts['sft_cutoff_len']} of {rows} rows (prompt + response)"
        )
    return warnings


def data_card(
    rows: list[dict], gold: dict[str, str], encode, cutoff_len: int | None, eval_max_tokens: int | None
) -> dict:
    """The card of one dataset. `encode(text) -> token ids` is the SFT student's tokenizer."""
    graded = grade_many([(extract_answer(row["output"] or ""), str(gold[row["id"]])) for row in rows])
    teacher = sum(row["stats"]["teacher_tokens"] for row in rows)
    student = sum(row["stats"]["student_tokens"] for row in rows)
    response = [len(encode(row["output"] or "")) for row in rows]
    whole = [len(encode(row["input"])) + n for row, n in zip(rows, response)]
    cuts = {
        "eval_max_tokens": sum(n > eval_max_tokens for n in response) if eval_max_tokens else 0,
        "sft_cutoff_len": sum(n > cutoff_len for n in whole) if cutoff_len else 0,
    }
    return {
        "rows": len(rows),
        "problems": len({row["id"] for row in rows}),
        "share_right": round(sum(g.correct for g in graded) / len(rows), 6) if rows else None,
        "teacher_share": round(teacher / (teacher + student), 6) if teacher + student else None,
        "steps": step_summary(rows),
        "finish": dict(sorted(Counter(row["stats"].get("finish", "unrecorded") for row in rows).items())),
        "response_tokens": length_summary(response),
        "prompt_plus_response_tokens": length_summary(whole),
        "budgets": {"sft_cutoff_len": cutoff_len, "eval_max_tokens": eval_max_tokens},
        "rows_over_budget": cuts,
        "warnings": budget_warnings(cuts, len(rows), cutoff_len, eval_max_tokens),
    }


def to_markdown(card: dict, title: str) -> str:
    steps = card["steps"]
    resp, whole = card["response_tokens"], card["prompt_plus_response_tokens"]
    lines = [
        f"# Data card: {title}",
        "",
        "| | |",
        "| :--- | ---: |",
        f"| rows (problems) | {card['rows']} ({card['problems']}) |",
        f"| share ending in the right answer | {card['share_right']} |",
        f"| teacher share of tokens | {card['teacher_share']} |",
        f"| student steps accepted / rejected | {steps['accepted_student_steps']} / {steps['rejected_student_steps']} |",
        f"| rows where the teacher took over | {steps['rows_with_teacher_takeover']} |",
        f"| how rows ended | {', '.join(f'{k} {v}' for k, v in card['finish'].items())} |",
        f"| response tokens median / p90 / max | {resp['median']} / {resp['p90']} / {resp['max']} |",
        f"| prompt + response tokens median / p90 / max | {whole['median']} / {whole['p90']} / {whole['max']} |",
        f"| eval max_tokens (responses over it) | {card['budgets']['eval_max_tokens']} "
        f"({card['rows_over_budget']['eval_max_tokens']}) |",
        f"| SFT cutoff_len (rows over it) | {card['budgets']['sft_cutoff_len']} "
        f"({card['rows_over_budget']['sft_cutoff_len']}) |",
    ]
    if "breach_rows" in steps:
        lines.append(
            f"| MOTAB breaches (median step t*) | {steps['breach_rows']} ({steps['bifurcation_step_median']}) |"
        )
    lines += [""] + [f"**Warning:** {w}" for w in card["warnings"]]
    return "\n".join(lines).rstrip() + "\n"


def student_encoder(tokenizer: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    return lambda text: tok.encode(text, add_special_tokens=False)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "data-card",
        __doc__.split("\n\n")[0],
        "motab data-card --rows results/toy/synth/motab.jsonl --problems results/toy/data/problems.jsonl "
        "--tokenizer results/toy/models/toy-student --cutoff-len 256 --json motab.card.json --md motab.card.md",
    )
    parser.add_argument("--rows", required=True, help="a synthesis file (synth/<method>.jsonl)")
    parser.add_argument("--problems", required=True, help="problems.jsonl with each id's gold answer")
    parser.add_argument("--tokenizer", required=True, help="the SFT student's tokenizer (folder or hub id)")
    parser.add_argument("--cutoff-len", type=int, default=None, help="SFT cutoff_len (default: not checked)")
    parser.add_argument("--eval-max-tokens", type=int, default=None, help="eval max_tokens (default: not checked)")
    parser.add_argument("--json", required=True, help="the card as JSON")
    parser.add_argument("--md", default=None, help="the card as a markdown page")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    rows = read_jsonl(args.rows)
    gold = {p["id"]: p["answer"] for p in read_jsonl(args.problems)}
    unknown = sorted({row["id"] for row in rows} - set(gold))
    if unknown:
        raise SystemExit(f"{args.rows}: ids not in {args.problems}: {unknown[:5]}")
    card = data_card(rows, gold, student_encoder(args.tokenizer), args.cutoff_len, args.eval_max_tokens)
    settings = {"tokenizer": args.tokenizer, "cutoff_len": args.cutoff_len, "eval_max_tokens": args.eval_max_tokens}
    write_json(args.json, card | {"provenance": provenance(settings)})
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(to_markdown(card, Path(args.rows).name.removesuffix(".jsonl")), encoding="utf-8")
    for warning in card["warnings"]:
        print(f"[motab] warning: {Path(args.rows).name}: {warning}")
    return 0
