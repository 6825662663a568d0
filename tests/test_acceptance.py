"""Acceptance rules of MOTAB and SKD on hand-built teacher distributions."""

import math

import pytest

from motab.synthesis.acceptance import (
    first_rejection,
    first_undecided,
    motab_accept,
    skd_decide,
    skd_keep,
    step_entropy,
)

LOG = math.log


def test_step_entropy_zero_one_and_top_k_cut():
    assert step_entropy([{7: 0.0}], k=20) == [0.0]                       # one certain token
    assert step_entropy([{1: LOG(0.5), 2: LOG(0.5)}], k=2) == [pytest.approx(1.0)]
    uniform = {t: LOG(1 / 20) for t in range(20)}
    assert step_entropy([uniform], k=20) == [pytest.approx(1.0)]
    # only the k most likely entries count, renormalised: uniform over 4 of 8 -> log 4 / log 4
    eight = {t: LOG(0.2 if t < 4 else 0.05) for t in range(8)}
    assert step_entropy([eight], k=4) == [pytest.approx(1.0)]
    assert 0.0 < step_entropy([{1: LOG(0.9), 2: LOG(0.1)}], k=2)[0] < 1.0
    assert step_entropy([{1: LOG(0.9), 2: LOG(0.1)}], k=1) == [0.0]
    with pytest.raises(ValueError):
        step_entropy([None], k=2)


def test_motab_accepts_confident_agreement_and_rejects_disagreement():
    certain = [{5: 0.0}] * 3
    assert motab_accept([0.0, 0.0, 0.0], certain, epsilon0=0.2, theta=1.0, k=20) == (True, 0.0, 0.2, 0.0)
    low = [LOG(0.1)] * 3  # teacher gives the drafted tokens 0.1: d = 0.9
    accepted, d, eps, hbar = motab_accept(low, [{5: LOG(0.9), 6: LOG(0.1)}] * 3, 0.2, 1.0, 20)
    assert not accepted and d == pytest.approx(0.9) and eps == pytest.approx(0.2 * (1 + hbar))


def test_motab_threshold_scales_with_teacher_entropy():
    flat = [{t: LOG(0.25) for t in range(4)}] * 2       # Hbar = 1 with k = 4
    token_lp = [LOG(0.7)] * 2                           # d = 0.3
    assert motab_accept(token_lp, flat, epsilon0=0.2, theta=0.0, k=4)[0] is False   # eps 0.2
    accepted, _d, eps, hbar = motab_accept(token_lp, flat, epsilon0=0.2, theta=1.0, k=4)  # eps 0.4
    assert accepted and hbar == pytest.approx(1.0) and eps == pytest.approx(0.4)


def test_motab_boundary_exactly_at_threshold_accepts():
    token_lp, tops = [LOG(0.6), LOG(0.8)], [{1: 0.0}, {1: 0.0}]   # Hbar 0, so eps = epsilon0
    _, d, _, _ = motab_accept(token_lp, tops, 1.0, 1.0, 20)
    assert motab_accept(token_lp, tops, epsilon0=d, theta=1.0, k=20)[0] is True
    assert motab_accept(token_lp, tops, epsilon0=math.nextafter(d, 0.0), theta=1.0, k=20)[0] is False
    assert motab_accept(token_lp, tops, epsilon0=0.0, theta=5.0, k=20)[0] is False  # epsilon0 0: never
    with pytest.raises(ValueError):
        motab_accept([], [], 0.2, 1.0, 20)


TEACHER = {10: LOG(0.5), 11: LOG(0.3), 12: LOG(0.15), 13: LOG(0.05)}


def test_skd_nucleus_and_topk():
    # nucleus 0.9: 0.5 + 0.3 = 0.8 < 0.9, so 12 completes it; 13 lies outside
    assert [skd_keep(t, TEACHER, "nucleus", 0.9) for t in (10, 11, 12, 13, 99)] == [True, True, True, False, False]
    # gamma exactly reached by the first two tokens: the nucleus stops there
    assert [skd_keep(t, TEACHER, "nucleus", 0.8) for t in (11, 12)] == [True, False]
    assert skd_keep(10, TEACHER, "nucleus", 0.5) and not skd_keep(11, TEACHER, "nucleus", 0.5)
    assert skd_keep(13, TEACHER, "nucleus", 1.0)
    assert [skd_keep(t, TEACHER, "topk", top_k=2) for t in (10, 11, 12)] == [True, True, False]
    with pytest.raises(ValueError):
        skd_keep(10, TEACHER, "bogus")
    with pytest.raises(ValueError):
        skd_keep(10, TEACHER, "nucleus", gamma=0.0)


def test_first_rejection_over_a_block():
    tops = [TEACHER] * 4
    assert first_rejection([10, 11, 12, 10], tops, "nucleus", 0.9) is None
    assert first_rejection([10, 13, 11, 99], tops, "nucleus", 0.9) == 1
    assert first_rejection([12, 10], tops[:2], "topk", top_k=2) == 0
    with pytest.raises(ValueError):
        first_rejection([10], tops, "nucleus")


def test_short_top_list_decisions_agree_with_the_full_list():
    """SKD verifies on a short top list first: every decision it makes is the full list's, and it
    says "undecided" exactly when the short list sums to less than gamma without the token."""
    import random

    rng = random.Random(0)
    undecided = 0
    for _ in range(2000):
        logits = [rng.gauss(0, rng.choice([0.5, 2.0, 6.0])) for _ in range(40)]
        peak = max(logits)
        norm = math.log(sum(math.exp(x - peak) for x in logits)) + peak
        full = {tid: x - norm for tid, x in enumerate(logits)}
        ranked = sorted(full, key=lambda t: (-full[t], t))
        short = {t: full[t] for t in ranked[:8]}
        token, gamma = rng.randrange(40), rng.choice([0.5, 0.9, 0.99])
        decided = skd_decide(token, short, gamma)
        if decided is None:
            undecided += 1
            assert token not in short and sum(math.exp(v) for v in short.values()) < gamma
        else:
            assert decided == skd_keep(token, full, "nucleus", gamma)
    assert 0 < undecided < 2000
    # Blocks: undecided only when the first non-kept position is undecided.
    top = {1: math.log(0.5), 2: math.log(0.3)}   # sums to 0.8 < gamma 0.9
    assert first_undecided([1, 2, 7], [top] * 3, 0.9) is True     # 7 may or may not lie in the nucleus
    assert first_undecided([1, 2, 1], [top] * 3, 0.9) is False    # all kept
    assert first_undecided([2, 7], [{1: math.log(0.95), 2: math.log(0.04)}, top], 0.9) is False  # 2 rejected first
