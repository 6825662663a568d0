"""`motab synth-filter`: the teacher-CoT quality filter over a synth file.

--mode seed (the cotfilter study's default) is the CoT-filter seed's filter-teacher-cot.py exactly
(seed_reason below); --repetition-check adds our degenerate-repetition check to it.
--mode ours: an output is dropped, for the first reason that applies in this order, if it
  banned_phrase  contains a banned word/phrase (case-insensitive substring),
  repetition     repeats some word n-gram more than max_ngram_repeats times (degenerate loops),
  no_answer      has no final answer (\\boxed{x}, "#### x", "The answer is x"),
  too_long       has more than max_words words,
  wrong_answer   has an answer that differs from gold.
Kept rows are written unchanged; the counts file says how many rows were dropped for each reason.

    motab synth-filter --input synth.jsonl --gold problems.jsonl --output kept.jsonl \\
        --counts counts.json [--mode seed|ours] [--banned "As an AI" --banned ...] [--max-words 2048] \\
        [--ngram 10 --max-ngram-repeats 3] [--repetition-check]
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence

from motab.commandline import command_parser
from motab.grading.equivalence import grade_many, is_equivalent
from motab.grading.extraction import extract_answer
from motab.jsonio import read_jsonl, write_json, write_jsonl
from motab.provenance import provenance

REASONS = ("banned_phrase", "repetition", "no_answer", "too_long", "wrong_answer")
SEED_REASONS = ("empty", "banned_phrase", "too_long", "repetition", "no_answer", "wrong_answer")
MODES = ("seed", "ours")
DEFAULT_MAX_WORDS = 2048
DEFAULT_NGRAM = 10
DEFAULT_MAX_NGRAM_REPEATS = 3


def max_ngram_count(text: str, ngram: int) -> int:
    """How often the most frequent word n-gram occurs (words lowercased, split on whitespace)."""
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, found {ngram}")
    words = text.lower().split()
    if len(words) < ngram:
        return 0
    counts = Counter(tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1))
    return max(counts.values())


def pre_grade_reason(
    output: str, banned: Sequence[str], max_words: int | None, max_ngram_repeats: int, ngram: int
) -> str | None:
    """The drop reason decided without the gold answer, or None when the output gets that far."""
    lowered = output.lower()
    if any(phrase and phrase.lower() in lowered for phrase in banned):
        return "banned_phrase"
    if max_ngram_count(output, ngram) > max_ngram_repeats:
        return "repetition"
    if extract_answer(output) is None:
        return "no_answer"
    if max_words is not None and len(output.split()) > max_words:
        return "too_long"
    return None


def filter_reason(
    output: str,
    gold: str,
    banned: Sequence[str] = (),
    max_words: int | None = DEFAULT_MAX_WORDS,
    max_ngram_repeats: int = DEFAULT_MAX_NGRAM_REPEATS,
    ngram: int = DEFAULT_NGRAM,
) -> str:
    """ "kept", or the first reason (REASONS order) to drop the output."""
    reason = pre_grade_reason(output, banned, max_words, max_ngram_repeats, ngram)
    if reason is not None:
        return reason
    return "kept" if is_equivalent(extract_answer(output), gold) else "wrong_answer"


# --- mode seed ------------------------------------------------------------------------------------
# The CoT-filter seed's extension1/filter-teacher-cot.py (ShiboJin/CIS5300-Final-Project @ fa67766c).
# An output is dropped, for the first reason that applies, if it
#   empty          is empty (whitespace only);
#   banned_phrase  has a banned phrase (lower-cased substring) in its CoT: the text before the LAST
#                  "####" (the whole text when there is none);
#   too_long       has a CoT of more than max_words words (the seed: 250);
#   repetition     (only with --repetition-check: our addition, not the seed's)
#   no_answer      has no "#### x" (checked only when the gold answer is non-empty);
#   wrong_answer   has a first "#### x" whose number differs from gold's.
# Answers compare as the seed's normalize_number_string: commas and "$" removed, the first number
# kept, "12" -> "12" via int, "12.50" -> "12.5" via float (so "#### 3.0" against gold "3" is a
# mismatch, as in the seed). An answer with no number in it is KEPT (the seed only drops when both
# normalised strings are non-empty and differ).

_BEFORE_LAST_HASH = re.compile(r"(.*)####", re.DOTALL)
_FIRST_HASH_ANSWER = re.compile(r"####\s*([^\n]+)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def seed_cot(text: str) -> str:
    """The text before the last "####", stripped; the whole text stripped when there is none."""
    m = _BEFORE_LAST_HASH.search(text)
    return m.group(1).strip() if m else text.strip()


def seed_final_answer(text: str) -> str:
    """What follows the first "####" on its line, stripped ("" when there is no "####")."""
    m = _FIRST_HASH_ANSWER.search(text)
    return m.group(1).strip() if m else ""


def seed_normalize(s: str) -> str:
    """The seed's normalize_number_string."""
    if not s:
        return ""
    m = _NUMBER.search(s.strip().replace(",", "").replace("$", ""))
    if not m:
        return ""
    num = m.group(0)
    return str(int(num)) if "." not in num else str(float(num))


def seed_reason(output: str, gold: str, banned, max_words: int | None, repetition=None) -> str:
    """ "kept" or the first drop reason; `repetition(cot) -> bool` is our optional extra check."""
    if not output or not output.strip():
        return "empty"
    cot = seed_cot(output)
    lowered = cot.lower().strip()
    if any(phrase and phrase.lower() in lowered for phrase in banned):
        return "banned_phrase"
    if max_words is not None and len(lowered.split()) > max_words:
        return "too_long"
    if repetition is not None and repetition(cot):
        return "repetition"
    gold = gold.strip() if isinstance(gold, str) else str(gold)
    if gold:
        final = seed_final_answer(output)
        if not final:
            return "no_answer"
        gold_norm, pred_norm = seed_normalize(gold), seed_normalize(final)
        if gold_norm and pred_norm and gold_norm != pred_norm:
            return "wrong_answer"
    return "kept"


def filter_rows(
    rows: list[dict],
    gold: dict[str, str],
    banned: Sequence[str],
    max_words: int | None,
    max_ngram_repeats: int,
    ngram: int,
    processes: int = 1,
    mode: str = "ours",
    repetition_check: bool = False,
) -> tuple[list[dict], dict]:
    """(kept rows, counts). mode "ours": answers compared by grade_many (a pathological answer
    times out); mode "seed": the seed's rules (seed_reason), repetition only if asked."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, found {mode!r}")
    for index, row in enumerate(rows):
        if row.get("id") not in gold:
            raise ValueError(f"row {index + 1}: id {row.get('id')!r} not in the gold problems")
    reasons: list[str | None] = []
    if mode == "seed":

        def repeats(cot: str) -> bool:
            return max_ngram_count(cot, ngram) > max_ngram_repeats

        reasons = [
            seed_reason(
                row.get("output") or "", str(gold[row["id"]]), banned, max_words, repeats if repetition_check else None
            )
            for row in rows
        ]
        return _tally(rows, reasons, SEED_REASONS)
    for row in rows:
        reasons.append(pre_grade_reason(row.get("output") or "", banned, max_words, max_ngram_repeats, ngram))
    pending = [i for i, reason in enumerate(reasons) if reason is None]
    grades = grade_many(
        [(extract_answer(rows[i]["output"]), str(gold[rows[i]["id"]])) for i in pending], processes=processes
    )
    for i, grade in zip(pending, grades):
        reasons[i] = "kept" if grade.correct else "wrong_answer"
    return _tally(rows, reasons, REASONS)


def _tally(rows: list[dict], reasons: list, names: tuple[str, ...]) -> tuple[list[dict], dict]:
    kept = [row for row, reason in zip(rows, reasons) if reason == "kept"]
    tally = Counter(reasons)
    counts = {"total": len(rows), "kept": len(kept), "dropped": {reason: tally.get(reason, 0) for reason in names}}
    return kept, counts


def main(argv: list[str]) -> int:
    parser = command_parser(
        "synth-filter",
        __doc__.split("\n\n")[0],
        "motab synth-filter --input results/toy/synth/teacher_only.jsonl --gold results/toy/data/problems.jsonl --output filtered.jsonl --counts filter_counts.json",
    )
    parser.add_argument("--input", required=True, help="synth/{method}.jsonl")
    parser.add_argument("--output", required=True, help="kept rows, unchanged")
    parser.add_argument("--counts", required=True, help="JSON: total, kept, dropped per reason")
    parser.add_argument("--gold", required=True, help="problems.jsonl (id, answer)")
    parser.add_argument("--banned", action="append", default=[], help="a banned word/phrase (repeatable)")
    parser.add_argument("--max-words", type=int, default=DEFAULT_MAX_WORDS, help="0 = no length cap")
    parser.add_argument("--ngram", type=int, default=DEFAULT_NGRAM)
    parser.add_argument("--max-ngram-repeats", type=int, default=DEFAULT_MAX_NGRAM_REPEATS)
    parser.add_argument("--processes", type=int, default=1, help="grading worker processes")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="ours",
        help="seed: the CoT-filter seed's filter-teacher-cot.py exactly; ours: the rules above",
    )
    parser.add_argument(
        "--repetition-check", action="store_true", help="mode seed: also drop degenerate repetition (our addition)"
    )
    parser.add_argument("--stats", help="also write the kept rows' summary (teacher share, ...) here")
    parser.add_argument("--params-json", default="{}", help="config values this output depends on (provenance)")
    args = parser.parse_args(argv)
    stamp = {"provenance": provenance(json.loads(args.params_json))}

    gold = {p["id"]: p["answer"] for p in read_jsonl(args.gold)}
    rows = read_jsonl(args.input)
    kept, counts = filter_rows(
        rows,
        gold,
        args.banned,
        args.max_words or None,
        args.max_ngram_repeats,
        args.ngram,
        args.processes,
        args.mode,
        args.repetition_check,
    )
    if args.stats:
        from motab.synthesis.stats import synth_stats

        write_json(args.stats, synth_stats(kept) | stamp)
    write_json(args.counts, counts | stamp)
    write_jsonl(args.output, kept)
    dropped = ", ".join(f"{k} {v}" for k, v in counts["dropped"].items() if v)
    print(
        f"kept {counts['kept']} of {counts['total']} -> {args.output}" + (f" (dropped: {dropped})" if dropped else "")
    )
    return 0
