"""Answer extraction: \\boxed (nested, last), \\fbox, GSM8K ####, final-answer phrases."""

from __future__ import annotations

import json

import pytest

from motab.evaluation.answers import extract_answer


@pytest.mark.parametrize("text, expected", [
    (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"first \boxed{1} then \boxed{\left\{1,2\right\}}", r"\left\{1,2\right\}"),
    (r"nested \boxed{\frac{\sqrt{2}}{2}} end", r"\frac{\sqrt{2}}{2}"),
    (r"x \fbox{3} y", "3"),
    (r"\boxed{a} then \fbox{b}", "b"),
    (r"\fbox{a} then \boxed{b}", "b"),
    (r"\boxed 7$", "7"),
    (r"ok \boxed{5} and \boxed{unclosed", "5"),
    ("work\n#### 1,234", "1234"),
    ("work\n#### 72\n", "72"),
    ("The answer is $5$.", "5"),
    ("so the final answer is \\(x+1\\).", "x+1"),
    ("blah\nFinal answer: 12", "12"),
    ("Answer: 3\nmore text\nThe answer is 4.", "4"),
])
def test_extracts(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text", ["", None, "no answer here", r"\boxed{unclosed", r"\boxed{}", "#### "])
def test_nothing_parsable(text):
    assert extract_answer(text) is None


def test_boxed_wins_over_hash_and_phrase():
    assert extract_answer("The answer is 3.\n#### 4\n\\boxed{5}") == "5"


def test_gsm8k_real_rows(shared_data):
    for split in ("train", "test"):
        with open(shared_data / "gsm8k" / f"{split}.jsonl", encoding="utf-8") as handle:
            rows = [json.loads(line) for _, line in zip(range(200), handle)]
        for row in rows:
            expected = row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
            assert extract_answer(row["answer"]) == expected
