"""Metrics against hand-computed cases."""

from __future__ import annotations

from math import comb

import pytest

from motab.evaluation.metrics import INVALID, maj_correct, majority_vote, pass_at_k, summarize
from motab.grading.equivalence import is_equivalent


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (4, 1, 1, 0.25),
        (4, 1, 2, 0.5),
        (4, 0, 1, 0.0),
        (4, 0, 4, 0.0),
        (4, 4, 1, 1.0),
        (4, 4, 4, 1.0),
        (5, 2, 3, 0.9),
        (4, 3, 2, 1.0),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_binomials_and_is_stable():
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert 0.0 <= pass_at_k(2000, 3, 1000) <= 1.0


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, 1, 0), (4, 1, 5), (0, 0, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def _eq(a: str, b: str) -> bool:
    return a == b


def test_majority_invalid_cluster_wins_and_is_incorrect():
    preds = [None, "2", None, "2", None]
    winner, clusters = majority_vote(preds, _eq)
    assert winner is None
    assert clusters == [INVALID, 0, INVALID, 0, INVALID]
    assert maj_correct([False, True, False, True, False], clusters) is False


def test_majority_tie_earliest_cluster_wins():
    winner, clusters = majority_vote(["3", "4", "4", "3"], _eq)
    assert clusters == [0, 1, 1, 0]
    assert winner == 0
    winner, clusters = majority_vote([None, "4", None, "4"], _eq)  # INVALID is earliest: it wins, incorrect
    assert winner is None
    winner, clusters = majority_vote(["4", None, None, "4"], _eq)
    assert winner == 0
    assert maj_correct([True, False, False, True], clusters) is True


def test_majority_clusters_equivalent_forms():
    preds = ["0.5", "3", r"\frac{1}{2}", "1/2", "3"]
    winner, clusters = majority_vote(preds, is_equivalent)
    assert clusters == [0, 1, 0, 0, 1]
    assert winner == 0


def test_majority_empty():
    assert majority_vote([], _eq) == (None, [])


def test_summarize_hand_computed():
    samples = [
        # 2 of 4 correct; majority: INVALID (2) ties with the correct cluster (2); correct cluster earlier
        {
            "correct": [True, False, True, False],
            "cluster": [0, INVALID, 0, INVALID],
            "responses": ["a b", "c", "d e f", ""],
        },
        # 0 of 4 correct
        {"correct": [False, False, False, False], "cluster": [0, 1, 0, 2], "responses": ["x"] * 4},
    ]
    m = summarize(samples, 4)
    assert set(m) == {"pass@4", "avg@4", "maj@4", "mean_words"}
    assert m["pass@4"] == pytest.approx(0.5)
    assert m["avg@4"] == pytest.approx(0.25)
    assert m["maj@4"] == pytest.approx(0.5)
    assert m["mean_words"] == pytest.approx((2 + 1 + 3 + 0 + 4) / 8)
    m2 = summarize(samples, 2)
    # pass@2 from all 4 samples: problem 1: 1 - C(2,2)/C(4,2) = 5/6; maj@2 on the first 2: tie, sample 0 correct
    assert m2["pass@2"] == pytest.approx((5 / 6) / 2)
    assert m2["maj@2"] == pytest.approx(0.5)
    assert m2["avg@2"] == pytest.approx(0.25)


def test_summarize_rejects_short_problems():
    with pytest.raises(ValueError):
        summarize([{"correct": [True], "cluster": [0], "responses": ["a"]}], 2)
