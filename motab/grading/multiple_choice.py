"""The letter grader of multiple-choice benchmarks (GPQA-Diamond; the problem rows and their
choice letters: motab.data.gpqa).

Grader: the letter of the last `\\boxed{X}` or "Answer: X" (any case, bold allowed), whichever
comes last in the response; a box may wrap it (`\\boxed{\\text{(B)}}`). Anything else (no such
marker, a marker followed by no single allowed letter) is no answer, graded wrong. EvalScope's
own parser also falls back to the response's last capital letter when no marker carries a label;
that fallback is not taken here (METHODS.md, Evaluation: GPQA-Diamond).
"""

from __future__ import annotations

import re

from motab.data.gpqa import LETTERS

_ANSWER_RE = re.compile(r"(?i)answer\s*:\s*")
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_WRAPPERS = re.compile(r"\\(?:text|textbf|mathbf|mathrm)\s*\{|[{}$*()\[\]\s.]")


def _letter(tail: str, letters: str) -> str | None:
    """The single allowed letter at the start of `tail` (wrappers such as \\text{(B)} or **B** removed)."""
    head = tail.split("\n", 1)[0]
    cleaned = _WRAPPERS.sub(" ", head).split()
    if not cleaned:
        return None
    word = cleaned[0].rstrip(",;:")
    return word if len(word) == 1 and word in letters else None


def _box_content(text: str, start: int) -> str:
    depth, i = 1, start
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start : i - 1] if depth == 0 else text[start:]


def extract_choice(text: str | None, letters: str = LETTERS) -> str | None:
    """The chosen letter: from the last \\boxed{...} or "Answer: X" in the text, whichever is last."""
    if not text:
        return None
    marks = [(m.start(), _box_content(text, m.end())) for m in _BOX_RE.finditer(text)]
    marks += [(m.start(), text[m.end() :]) for m in _ANSWER_RE.finditer(text)]
    if not marks:
        return None
    _, tail = max(marks, key=lambda mark: mark[0])
    return _letter(tail, letters)


def grade_choice(response: str | None, gold: str, letters: str = LETTERS) -> tuple[str | None, bool, str]:
    """(pred, correct, reason) with equivalence.REASONS' names: correct, wrong or no_answer."""
    pred = extract_choice(response, letters)
    if pred is None:
        return None, False, "no_answer"
    return pred, pred == gold.strip().upper(), "correct" if pred == gold.strip().upper() else "wrong"
