"""Verdicts a human disputes, decided as math-verify and the released evaluators decide them: every
equivalence of the pipeline agrees with math-verify's own verify(parse(gold), parse(pred)) and with
EvalScope's math comparison (the MOTAB release's grader) on each disputed pair (METHODS.md,
"Disputed verdicts")."""

from __future__ import annotations

import pytest

from motab.grading.equivalence import EQUIVALENCES, grade_many
from motab.grading.extraction import extract_answer

# (response, gold, the verdict of math-verify and of every released evaluator)
DISPUTED = [
    ("so the count is $\\boxed{1\\,000}$", "1000", False),  # math-verify reads 1\,000 as 1*0 (a product)
    ("the set is $\\boxed{x>2}$", "(2,\\infty)", False),  # a relation is not an interval
    ("$\\boxed{x \\in (2,\\infty)}$", "(2,\\infty)", True),
    ("$\\boxed{1{,}000}$", "1000", True),  # LaTeX's {,} thousands separator
    ("$\\boxed{1,000}$", "1000", True),
]


def math_verify_verdict(pred: str, gold: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))


def evalscope_verdict(pred: str, gold: str) -> bool:
    from evalscope.metrics.math.parser import compare_answers

    return bool(compare_answers(pred, gold).matched)


@pytest.mark.parametrize("response, gold, verdict", DISPUTED)
def test_released_evaluators_decide_the_disputed_pairs(response, gold, verdict):
    pred = extract_answer(response, "boxed")
    assert math_verify_verdict(pred, gold) is verdict
    assert evalscope_verdict(pred, gold) is verdict


@pytest.mark.parametrize("equivalence", sorted(EQUIVALENCES))
def test_every_equivalence_agrees_with_the_released_evaluators(equivalence):
    # cis5300 parses the raw strings (its seed's score.py), which reads `x \in (2,\infty)` otherwise;
    # on the two disputed pairs it agrees too
    cases = DISPUTED[:2] if equivalence == "cis5300" else DISPUTED
    pairs = [(extract_answer(response, "boxed"), gold) for response, gold, _ in cases]
    grades = grade_many(pairs, processes=1, timeout_s=10, equivalence=equivalence)
    assert [g.correct for g in grades] == [verdict for _, _, verdict in cases]
