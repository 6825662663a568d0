"""Acceptance rule of token-level SKD (Xu et al. 2024, arXiv 2410.11325), as a pure function.

Teacher distributions arrive as the server returns them: per position a dict {token_id: logprob}
of the teacher's top tokens (see motab.serving.client.input_top_logprobs). The student's token
y_t is kept iff it is among the teacher's top-K tokens at t.

(The step-level rules of the MOTAB release, MOTAB's entropy boundary and its SKD baseline's
gamma test, live with their methods: motab_method.py and skd.py.)
"""

from __future__ import annotations

from collections.abc import Sequence


def _ranked(top: dict[int, float]) -> list[tuple[int, float]]:
    """(token_id, logprob) from most to least likely; ties broken by token id, so ranks are stable."""
    return sorted(top.items(), key=lambda item: (-item[1], item[0]))


def topk_keep(token_id: int, teacher_top: dict[int, float], top_k: int) -> bool:
    """Whether the teacher keeps the student's token: it is among the teacher's top_k tokens."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, found {top_k}")
    return token_id in {tid for tid, _lp in _ranked(teacher_top)[:top_k]}


def first_rejection(draft_ids: Sequence[int], teacher_tops: Sequence[dict[int, float]], top_k: int) -> int | None:
    """Index of the first drafted token the teacher rejects, or None when it keeps the whole block."""
    if len(draft_ids) != len(teacher_tops):
        raise ValueError(
            f"first_rejection: {len(draft_ids)} drafted tokens but {len(teacher_tops)} teacher distributions"
        )
    for index, (token_id, top) in enumerate(zip(draft_ids, teacher_tops)):
        if not topk_keep(token_id, top, top_k):
            return index
    return None
