"""Token-level SKD's top-K rule (Xu et al.), as pure functions of teacher top logprobs."""

import math

import pytest

from motab.synthesis.skd_tokens import first_rejection, topk_keep

TOP = {5: math.log(0.5), 7: math.log(0.3), 9: math.log(0.15), 11: math.log(0.05)}


def test_topk_keeps_the_k_most_likely_tokens():
    assert topk_keep(5, TOP, 1) and not topk_keep(7, TOP, 1)
    assert topk_keep(9, TOP, 3) and not topk_keep(11, TOP, 3)
    assert not topk_keep(42, TOP, 25)  # absent from the teacher's list: outside its top-K
    with pytest.raises(ValueError):
        topk_keep(5, TOP, 0)


def test_first_rejection_over_a_block():
    assert first_rejection([5, 7, 9], [TOP] * 3, 3) is None
    assert first_rejection([5, 11, 5], [TOP] * 3, 3) == 1
    with pytest.raises(ValueError):
        first_rejection([5], [TOP, TOP], 3)
