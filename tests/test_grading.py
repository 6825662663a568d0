"""Grading: math-verify equivalence on real gold answers, known pairs, and the per-answer timeout."""

from __future__ import annotations

import json
import signal
import time

import pytest

from motab.data.benchmarks import load_benchmark
from motab.grading import equivalence
from motab.grading.equivalence import Grade, grade_many, is_equivalent, math_equal
from motab.grading.extraction import extract_answer

TOWER = "9^{9^{9^{9^{9^{9}}}}}"


FORMATS = {"math500": "math500", "aime24": "aime", "aime25": "aime", "amc23": "amc23", "gsm8k": "gsm8k"}


def _golds(shared_data, bench: str) -> list[str]:
    """Gold answers as the benchmark loader gives them (GSM8K: the number after "####")."""
    return [row["answer"] for row in load_benchmark(shared_data / bench / "test.jsonl", FORMATS[bench], bench)]


@pytest.mark.parametrize("bench", ["math500", "aime24", "aime25", "amc23", "gsm8k"])
def test_gold_answers_self_grade(shared_data, bench):
    """Every gold answer parses and verifies against itself through math-verify (no string shortcut).

    MATH-500 takes about 4 s on one core, GSM8K's 1,319 about 2 s.
    """
    golds = _golds(shared_data, bench)
    assert golds
    failures = [g for g in golds if not math_equal(g, g)]
    assert not failures, f"{len(failures)} {bench} golds do not self-grade: {failures[:10]}"


def test_gold_answers_boxed_response_grade_many(shared_data):
    """AIME/AMC golds written as a model would (\\boxed in a sentence) grade correct in a worker pool."""
    golds = _golds(shared_data, "aime24") + _golds(shared_data, "aime25") + _golds(shared_data, "amc23")
    pairs = [(extract_answer(f"Thus the result is $\\boxed{{{g}}}$."), g) for g in golds]
    grades = grade_many(pairs, processes=2, timeout_s=5)
    assert all(g.correct and g.reason == "correct" for g in grades)


def test_gsm8k_extract_and_self_grade(shared_data):
    pairs = []
    for split in ("train", "test"):
        with open(shared_data / "gsm8k" / f"{split}.jsonl", encoding="utf-8") as handle:
            for _, line in zip(range(200), handle):
                row = json.loads(line)
                gold = row["answer"].rsplit("####", 1)[1].strip()
                pred = extract_answer(row["answer"])
                assert pred is not None
                pairs.append((pred, gold))
    grades = grade_many(pairs, processes=1)
    assert [g.reason for g in grades] == ["correct"] * len(pairs)


EQUIVALENT = [
    (r"0.5", r"\frac{1}{2}"),
    (r"1/2", r"\frac{1}{2}"),
    (r"\dfrac12", r"\frac{1}{2}"),
    ("10.0", "10"),
    ("025", "25"),
    (r"\frac{\sqrt2}{2}", r"\sqrt{2}/2"),
    (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}"),
    (r"\{3,2,1\}", r"\{1,2,3\}"),
    (r"[0, 1)", r"[0,1)"),
    (r"(-\infty,2)", r"(-\infty, 2)"),
    (r"(3,\pi/2)", r"\left( 3, \frac{\pi}{2} \right)"),
    ("1+x", "x+1"),
    ("1,000", "1000"),
    ("3^{2}", "9"),
]
DIFFERENT = [
    ("2", r"\frac{1}{2}"),
    ("1/2", "2"),
    ("-3", "3"),
    ("x-1", "x+1"),
    ("[0,1]", "[0,1)"),
    (r"\{1,2\}", r"\{1,3\}"),
    (r"\sqrt{3}", r"\sqrt{2}"),
    ("(1,2)", "[1,2]"),
]


@pytest.mark.parametrize("pred, gold", EQUIVALENT)
def test_equivalent_pairs(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize("pred, gold", DIFFERENT)
def test_different_pairs(pred, gold):
    assert not is_equivalent(pred, gold)


def test_grade_many_reasons_and_order():
    pairs = [(r"\frac{1}{2}", "0.5"), ("3", "-3"), (None, "4"), ("", "4"), ("7", "7")] + [(p, g) for p, g in DIFFERENT]
    for processes in (0, 1, 2):
        grades = grade_many(pairs, processes=processes, timeout_s=5)
        assert grades[:5] == [
            Grade(r"\frac{1}{2}", True, "correct"),
            Grade("3", False, "wrong"),
            Grade(None, False, "no_answer"),
            Grade("", False, "no_answer"),
            Grade("7", True, "correct"),
        ]
        assert [g.reason for g in grades[5:]] == ["wrong"] * len(DIFFERENT)


@pytest.mark.parametrize("processes", [1, 2])
def test_timeout_adversarial_answer(processes):
    timeout_s = 1.0
    start = time.monotonic()
    grades = grade_many([(TOWER, "5"), (r"\frac{4}{2}", "2")], processes=processes, timeout_s=timeout_s)
    elapsed = time.monotonic() - start
    assert grades[0] == Grade(TOWER, False, "timeout")
    assert grades[1].reason == "correct"
    assert elapsed < timeout_s + equivalence.HARD_GRACE_S + 2.5


def _blocking_judge(original):
    """A judge that hangs with SIGALRM blocked (as C code would) for the answer 'hang'."""

    def judge(pred, gold, timeout_s, *rest):
        if pred == "hang":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
        return original(pred, gold, timeout_s, *rest)

    return judge


@pytest.mark.skipif(equivalence._context().get_start_method() != "fork", reason="needs fork to patch the worker")
def test_hung_worker_is_killed_and_replaced(monkeypatch):
    monkeypatch.setattr(equivalence, "_judge", _blocking_judge(equivalence._judge))
    timeout_s = 0.5
    start = time.monotonic()
    grades = grade_many([("hang", "x+1"), (r"\frac{4}{2}", "2"), ("x+1", "1+x")], processes=1, timeout_s=timeout_s)
    elapsed = time.monotonic() - start
    assert [g.reason for g in grades] == ["timeout", "correct", "correct"]
    assert elapsed < timeout_s + equivalence.HARD_GRACE_S + 3
