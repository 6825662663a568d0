"""Acceptance rules of the draft-and-verify synthesis methods, as pure functions of logprobs.

Teacher distributions arrive as the server returns them: per position a dict {token_id: logprob}
of the teacher's top tokens (see motab.serving.client.input_top_logprobs).

MOTAB (step-wise, entropy-gated):
    H_i  = entropy of the renormalised top-k distribution at position i, divided by log k
    Hbar = mean_i H_i
    d    = mean_i (1 - p_T(y_i))
    eps  = epsilon0 * (1 + theta * Hbar)        accept the student's step iff d <= eps

SKD (token-level): keep the student's token y_t if it lies in the teacher's nucleus (the smallest
set of top tokens whose cumulative probability reaches gamma) or, with rule "topk", in the
teacher's top-K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RULES = ("nucleus", "topk")


def _ranked(top: dict[int, float]) -> list[tuple[int, float]]:
    """(token_id, logprob) from most to least likely; ties broken by token id, so ranks are stable."""
    return sorted(top.items(), key=lambda item: (-item[1], item[0]))


def step_entropy(top_logprobs_per_position: Sequence[dict[int, float]], k: int) -> list[float]:
    """Per position: entropy of the renormalised top-k distribution divided by log k, in [0, 1].

    Only the k most likely entries of each dict are used (the server may return more). k = 1
    gives 0 (a one-token distribution carries no uncertainty).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, found {k}")
    out = []
    for index, top in enumerate(top_logprobs_per_position):
        if not top:
            raise ValueError(f"position {index}: no top logprobs (was top_logprobs_num set?)")
        if k == 1:
            out.append(0.0)
            continue
        logprobs = [lp for _tid, lp in _ranked(top)[:k]]
        peak = max(logprobs)
        weights = [math.exp(lp - peak) for lp in logprobs]
        total = sum(weights)
        entropy = -sum((w / total) * math.log(w / total) for w in weights if w > 0)
        out.append(min(max(entropy / math.log(k), 0.0), 1.0))
    return out


def motab_accept(token_logprobs: Sequence[float], top_logprobs: Sequence[dict[int, float]], epsilon0: float,
                 theta: float, k: int) -> tuple[bool, float, float, float]:
    """(accepted, d, eps, Hbar) for one drafted step scored by the teacher."""
    if not token_logprobs:
        raise ValueError("motab_accept: the drafted step has no tokens")
    if len(token_logprobs) != len(top_logprobs):
        raise ValueError(f"motab_accept: {len(token_logprobs)} token logprobs but {len(top_logprobs)} top-k "
                         "distributions")
    d = sum(1.0 - math.exp(lp) for lp in token_logprobs) / len(token_logprobs)
    entropies = step_entropy(top_logprobs, k)
    hbar = sum(entropies) / len(entropies)
    eps = epsilon0 * (1.0 + theta * hbar)
    return d <= eps, d, eps, hbar


def skd_decide(token_id: int, teacher_top: dict[int, float], gamma: float = 0.9) -> bool | None:
    """Nucleus membership from a top-n prefix of the teacher's distribution: True (inside), False
    (outside: the tokens ranked before it already reach gamma), or None when these n entries do not
    decide it (the token is not among them and they sum to less than gamma). skd_keep on a longer
    top list agrees with every True/False given here."""
    before = 0.0
    for tid, lp in _ranked(teacher_top):
        if before >= gamma:
            return False
        if tid == token_id:
            return True
        before += math.exp(lp)
    return False if before >= gamma else None


def skd_keep(token_id: int, teacher_top: dict[int, float], rule: str = "nucleus", gamma: float = 0.9,
             top_k: int = 25) -> bool:
    """Whether the teacher keeps the student's token (SKD).

    nucleus: the token's rank r (0 = most likely) must satisfy sum of the probabilities ranked
    before it < gamma. A token absent from `teacher_top` is rejected: either the returned tokens
    already reach gamma (so it is outside the nucleus), or they do not and membership cannot be
    decided from what the server returned; ask for enough top logprobs that they cover gamma.
    topk: the token must be among the teacher's top_k most likely tokens.
    """
    if rule == "topk":
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, found {top_k}")
        return token_id in {tid for tid, _lp in _ranked(teacher_top)[:top_k]}
    if rule != "nucleus":
        raise ValueError(f"rule: expected one of {RULES}, found {rule!r}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must lie in (0, 1], found {gamma}")
    return skd_decide(token_id, teacher_top, gamma) is True


def first_rejection(draft_ids: Sequence[int], teacher_tops: Sequence[dict[int, float]], rule: str = "nucleus",
                    gamma: float = 0.9, top_k: int = 25) -> int | None:
    """Index of the first drafted token the teacher rejects, or None when it keeps the whole block."""
    if len(draft_ids) != len(teacher_tops):
        raise ValueError(f"first_rejection: {len(draft_ids)} drafted tokens but {len(teacher_tops)} teacher "
                         "distributions")
    for index, (token_id, top) in enumerate(zip(draft_ids, teacher_tops)):
        if not skd_keep(token_id, top, rule, gamma, top_k):
            return index
    return None


def first_undecided(draft_ids: Sequence[int], teacher_tops: Sequence[dict[int, float]], gamma: float) -> bool:
    """Whether the nucleus rule on these (short) top lists reaches a position it cannot decide
    before any rejection: the block then needs the longer top list (see skd_decide)."""
    for token_id, top in zip(draft_ids, teacher_tops):
        decided = skd_decide(token_id, top, gamma)
        if decided is None:
            return True
        if decided is False:
            return False
    return False
