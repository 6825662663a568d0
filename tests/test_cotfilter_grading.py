"""The cotfilter study grades as the CoT-filter seed (ShiboJin/CIS5300-Final-Project @ fa67766):
its generation scripts keep "#### x" for the FIRST `####\\s*x` of the generation (split_prediction),
and score.py takes what follows the last "####" of that (else the last non-empty line) and compares
verify(parse(gold), parse(pred)), falling back to stripped lower-cased string equality.

The rows below are written here in the shape of the seed's released outputs (models that keep
writing after their answer: extra turns, invented "Problem:" blocks); the expected verdicts are what
that rule gives by hand. Figures on the released outputs themselves are in METHODS.md.
"""

from __future__ import annotations

import pytest

from motab.grading.extraction import extract_answer
from motab.grading.grade_command import grade_rows
from motab.jsonio import write_jsonl

ROWS = [
    # (generation, gold, first_hash pred, correct)
    ("16 - 3 - 4 = 9 eggs, 9 * $2 = $18.\n#### 18\nAnswer:\nassistant\nJanet's ducks ... #### 20", "18", "18", True),
    ("so 5 roots.\n#### 5\nProblem:\nIf x^2 = 16 ...\nThe sum is \\boxed{7}.\n#### 7", "7", "5", False),
    ("He pays 3 * 4 = 12.\n#### $12\n", "12", "$12", True),
    ("Half of it:\n#### \\frac{1}{2}\nassistant\n#### 0.7", "0.5", "\\frac{1}{2}", True),
    ("x = 1#### 2\nmore", "2", "2", True),  # what follows the last #### of the kept line
    ("so\n#### 6x-20x-48####", "48", "#### 6x-20x-48####", False),  # nothing after: the kept line itself
    ("6x-20x-48####\nmore", "48", "more", False),  # the seed's \s* runs over the line break
    ("no hashes here\nthe total is 40 apples\n\n", "40", "the total is 40 apples", True),  # parse finds 40
    ("Final:\nnavin", "Navin", "navin", False),  # math-verify parses neither and raises nothing: not equal
]


@pytest.mark.parametrize("generation, gold, pred, correct", ROWS)
def test_first_hash_extraction(generation, gold, pred, correct):
    assert extract_answer(generation, "first_hash") == pred


def test_cotfilter_rule_grades_the_rows(tmp_path):
    write_jsonl(
        tmp_path / "in.jsonl", [{"id": i, "response": g, "gold": gold} for i, (g, gold, _, _) in enumerate(ROWS)]
    )
    out = grade_rows(tmp_path / "in.jsonl", extraction="first_hash", equivalence="cis5300")
    assert [row["correct"] for row in out] == [correct for *_, correct in ROWS]
    # the pipeline's default (last \\boxed{}, else last ####) reads these generations differently
    default = grade_rows(tmp_path / "in.jsonl")
    assert [row["correct"] for row in default] != [correct for *_, correct in ROWS]
