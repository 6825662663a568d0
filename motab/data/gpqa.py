"""GPQA-Diamond's problem rows (format `gpqa_diamond`); the grader: motab.grading.multiple_choice.

Format `gpqa_diamond` (the public release's fields, as EvalScope's `gpqa_diamond` reads them):
`Question`, `Correct Answer`, `Incorrect Answer 1`, `Incorrect Answer 2`, `Incorrect Answer 3`.
The four choices are shuffled by EvalScope 1.14's seeded rule, so both engines show the same
letters: the list [incorrect 1, incorrect 2, incorrect 3, correct] (each stripped; a missing one
is " ") is shuffled by `random.Random(seed)` where seed is the first 8 bytes, big-endian, of the
SHA-256 of the stripped question. The gold answer is the correct choice's letter. The problem's
`input` is EvalScope's chain-of-thought multiple-choice prompt (its SINGLE_ANSWER_TEMPLATE_COT:
instruction, question, "A) ..." lines), so the native engine asks what EvalScope asks and the
evalscope engine's reviews match the rows by text.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from motab.jsonio import DataError, iter_jsonl

LETTERS = "ABCD"
FIELDS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
_PROMPT = (
    "Answer the following multiple choice question. The last line of your response should be of the "
    "following format: 'ANSWER: [LETTER]' (without quotes) where [LETTER] is one of {letters}. Think step "
    "by step before answering.\n\n{question}\n\n{choices}"
)


def _clean(text) -> str:
    return " " if text is None else str(text).strip()


def shuffle_choices(question: str, correct: str, incorrect: list[str]) -> tuple[list[str], str]:
    """(choices in their shown order, the correct choice's letter): EvalScope 1.14's seeded rule."""
    choices = [_clean(c) for c in incorrect] + [_clean(correct)]
    seed = int.from_bytes(hashlib.sha256(_clean(question).encode("utf-8")).digest()[:8], "big")
    random.Random(seed).shuffle(choices)
    return choices, LETTERS[choices.index(_clean(correct))]


def prompt_text(question: str, choices: list[str]) -> str:
    letters = ",".join(LETTERS[: len(choices)])
    lines = "\n".join(f"{LETTERS[i]}) {choice}" for i, choice in enumerate(choices))
    return _PROMPT.format(letters=letters, question=question, choices=lines)


def load_gpqa(path: str | Path, name: str, count: int = 0, limit: int = 0) -> list[dict]:
    """problems.jsonl rows {"id", "input", "answer" (a letter), "solution", "source"}, sorted by id."""
    rows, last_line = [], 0
    for line, raw in iter_jsonl(path):
        last_line = line
        for field in FIELDS:
            value = raw.get(field)
            if field not in raw or (field in FIELDS[:2] and (not isinstance(value, str) or not value.strip())):
                raise DataError(
                    path,
                    line,
                    field,
                    f"expected a non-empty string (a gpqa_diamond line has {', '.join(FIELDS)}), found {value!r:.60}",
                )
        choices, letter = shuffle_choices(
            raw["Question"], raw["Correct Answer"], [raw[f"Incorrect Answer {i}"] for i in (1, 2, 3)]
        )
        if len(set(choices)) != len(choices):
            raise DataError(path, line, "Incorrect Answer 1", f"two choices are the same text: {choices}")
        raw_id = raw.get("Record ID") or raw.get("id")
        rows.append(
            {
                "id": str(raw_id) if raw_id else f"{name}-{line - 1:05d}",
                "input": prompt_text(_clean(raw["Question"]), choices),
                "answer": letter,
                "solution": raw.get("Explanation") if isinstance(raw.get("Explanation"), str) else None,
                "source": name,
            }
        )
    if not rows:
        raise DataError(path, None, None, "no problems found")
    if count and len(rows) != count:
        raise DataError(path, last_line, None, f"expected {count} {name} problems (config `count`), found {len(rows)}")
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise DataError(path, None, "Record ID", "duplicate ids")
    rows.sort(key=lambda row: row["id"])
    return rows[:limit] if limit else rows
