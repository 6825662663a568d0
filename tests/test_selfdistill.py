"""The self-distillation family's per-token losses and reductions against naive references."""

from __future__ import annotations

import math

import pytest
import torch

from motab.losses.divergences import chunked_token_entropy, chunked_token_loss
from motab.losses.selfdistill import (
    PW_PRESETS,
    PositionSchedule,
    entropy_phase_mask,
    eopd_token_loss,
    opsd_token_loss,
    per_sequence_reduction,
    per_sequence_token_weights,
    position_weights,
    relative_positions,
    reopold_loss,
)

B, T, D_S, D_T, V = 3, 7, 8, 12, 50  # 15 valid tokens: chunk 4 does not divide them


def make_case(seed: int):
    gen = torch.Generator().manual_seed(seed)
    s_hidden = torch.randn(B, T, D_S, generator=gen, dtype=torch.float64)
    t_hidden = torch.randn(B, T, D_T, generator=gen, dtype=torch.float64)
    s_head = torch.nn.Linear(D_S, V, bias=False).double()
    t_head = torch.nn.Linear(D_T, V, bias=False).double()
    with torch.no_grad():
        s_head.weight.copy_(torch.randn(V, D_S, generator=gen, dtype=torch.float64) * 0.5)
        t_head.weight.copy_(torch.randn(V, D_T, generator=gen, dtype=torch.float64) * 0.5)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 5:] = False   # right padding (responses end at eos)
    mask[1, 4:] = False
    mask[2, 6] = False
    return s_hidden.requires_grad_(True), t_hidden, s_head, t_head, mask


def naive_token_losses(s_logits, t_logits, loss, tau, clip=None, clip_mode="token"):
    """Textbook per-token values over [B, T, V] probabilities, no chunks."""
    p_s = torch.softmax(s_logits.double() / tau, -1)
    p_t = torch.softmax(t_logits.double() / tau, -1)
    fkl = (p_t * (p_t.log() - p_s.log())).sum(-1)
    rkl = (p_s * (p_s.log() - p_t.log())).sum(-1)
    if loss == "eopd":
        a = (-(p_t * p_t.log()).sum(-1) / math.log(V)).detach()
        return a * fkl + (1 - a) * rkl
    if clip_mode == "token":
        return torch.minimum(fkl, torch.full_like(fkl, clip))
    return (p_t * torch.minimum(p_t.log() - p_s.log(), torch.full_like(p_t, clip))).sum(-1)


def check(got, ref, s_hidden, s_head):
    ref_grads = torch.autograd.grad(ref, [s_hidden, s_head.weight])
    got_grads = torch.autograd.grad(got, [s_hidden, s_head.weight])
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-7)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("clip_mode", ["token", "logratio"])
@pytest.mark.parametrize("fused", [True, False])
def test_opsd_clipped_fkl_matches_naive_mean(clip_mode, fused):
    s_hidden, t_hidden, s_head, t_head, mask = make_case(seed=1)
    tau = 1.1
    unclipped = naive_token_losses(s_head(s_hidden), t_head(t_hidden), "opsd", tau, clip=1e9)
    values = unclipped[mask].detach().sort().values
    half = values.numel() // 2                        # clip between two token values: about half are clipped
    clip = float(values[half - 1] + values[half]) / 2
    per_token = naive_token_losses(s_head(s_hidden), t_head(t_hidden), "opsd", tau, clip, clip_mode)
    ref = (per_token * mask).sum() / mask.sum()
    got = chunked_token_loss(s_hidden, s_head, t_hidden, mask,
                             lambda s, t: opsd_token_loss(s, t, tau, clip, clip_mode), teacher_head=t_head,
                             chunk_tokens=4, fused=fused)
    check(got, ref, s_hidden, s_head)
    if clip_mode == "token":
        assert 0 < int((unclipped[mask] > clip).sum()) < int(mask.sum())


@pytest.mark.parametrize("fused", [True, False])
def test_eopd_matches_naive_mean(fused):
    s_hidden, t_hidden, s_head, t_head, mask = make_case(seed=2)
    per_token = naive_token_losses(s_head(s_hidden), t_head(t_hidden), "eopd", 1.0)
    ref = (per_token * mask).sum() / mask.sum()
    got = chunked_token_loss(s_hidden, s_head, t_hidden, mask, eopd_token_loss, teacher_head=t_head,
                             chunk_tokens=4, fused=fused)
    check(got, ref, s_hidden, s_head)


def test_eopd_weight_is_the_teacher_normalised_entropy():
    uniform_teacher = torch.zeros(1, V)       # entropy log V: a = 1, pure forward KL
    student = torch.randn(1, V)
    fkl = (torch.softmax(uniform_teacher, -1) * (torch.log_softmax(uniform_teacher, -1)
                                                 - torch.log_softmax(student, -1))).sum()
    assert math.isclose(eopd_token_loss(student, uniform_teacher).item(), fkl.item(), rel_tol=1e-5)


def test_position_weights_follow_the_formula_at_known_positions():
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
                         [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    schedule = PW_PRESETS["moderate"]
    w = position_weights(mask, schedule)

    def formula(u: float) -> float:
        return 0.25 + 0.75 / (1.0 + math.exp(-(u - 0.30) / 0.10))

    # row 0: T = 5, t = 1..5 -> u = 0.2, 0.4, ..., 1.0; row 1: T = 10, u = 0.1, ..., 1.0
    for t in range(1, 6):
        assert math.isclose(w[0, t - 1].item(), formula(t / 5), rel_tol=1e-6)
    for t in range(1, 11):
        assert math.isclose(w[1, t - 1].item(), formula(t / 10), rel_tol=1e-6)
    assert (w[0, 5:] == 0).all()
    assert math.isclose(w[1, 2].item(), 0.25 + 0.75 * 0.5, rel_tol=1e-6)   # u = tau: half way
    assert (w[1, 1:] > w[1, :-1]).all()                                     # increasing
    aggressive = position_weights(mask, PW_PRESETS["aggressive"])
    assert aggressive[1, 0] < w[1, 0] and math.isclose(aggressive[1, 0].item(), 0.10 + 0.90 / (1 + math.exp(2.0)),
                                                      rel_tol=1e-6)


def test_relative_positions_count_only_valid_tokens():
    mask = torch.tensor([[0, 1, 1, 0, 1]], dtype=torch.bool)   # u only advances on valid tokens
    torch.testing.assert_close(relative_positions(mask), torch.tensor([[0.0, 1 / 3, 2 / 3, 0.0, 1.0]]))


def test_per_sequence_reduction_by_hand():
    losses = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 8.0, 99.0, 99.0], [99.0, 99.0, 99.0, 99.0]])
    weights = torch.tensor([[1.0, 1.0, 2.0, 5.0], [1.0, 3.0, 5.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    # seq 0: (1 + 2 + 2*3) / 4 = 2.25; seq 1: (4 + 3*8) / 4 = 7; seq 2 has no tokens and is not counted
    assert math.isclose(per_sequence_reduction(losses, weights, mask).item(), (2.25 + 7.0) / 2, rel_tol=1e-6)
    c = per_sequence_token_weights(weights, mask)
    torch.testing.assert_close(c.sum(-1), torch.tensor([0.5, 0.5, 0.0]))


@pytest.mark.parametrize("fused", [True, False])
def test_pwopsd_chunked_equals_per_sequence_reduction(fused):
    s_hidden, t_hidden, s_head, t_head, mask = make_case(seed=3)
    schedule = PositionSchedule(w_min=0.25, tau=0.30, s=0.10)
    clip = 0.5
    per_token = naive_token_losses(s_head(s_hidden), t_head(t_hidden), "opsd", 1.1, clip)
    w = position_weights(mask, schedule)
    ref = sum((per_token[b][mask[b]] * w[b][mask[b]]).sum() / w[b][mask[b]].sum() for b in range(B)) / B
    got = chunked_token_loss(s_hidden, s_head, t_hidden, mask, lambda s, t: opsd_token_loss(s, t, 1.1, clip),
                             teacher_head=t_head, weights=per_sequence_token_weights(w, mask), chunk_tokens=4,
                             fused=fused)
    check(got, ref, s_hidden, s_head)


def test_reopold_loss_value_and_gradient_by_hand():
    logp_s = torch.tensor([[-1.0, -2.0, -0.5], [-3.0, -1.0, -9.0]], requires_grad=True)
    logp_t = torch.tensor([[-0.5, -5.0, -0.5], [-1.0, -4.0, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    phase = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    # rewards r = lt - ls: [0.5, -3, 0], [2, -3, .]; floor -1 -> [0.5, -1, 0], [2, -1]; phase drops (0, 2)
    loss = reopold_loss(logp_s, logp_t, mask, reward_floor=-1.0, phase_mask=phase)
    expected = -(0.5 * -1.0 + -1.0 * -2.0 + 2.0 * -3.0 + -1.0 * -1.0) / 4
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    loss.backward()
    torch.testing.assert_close(logp_s.grad, -torch.tensor([[0.5, -1.0, 0.0], [2.0, -1.0, 0.0]]) / 4)
    # no floor, no phase mask: the gradient is the sampled reverse-KL policy gradient -r_t / N
    logp_s.grad = None
    reopold_loss(logp_s, logp_t, mask, reward_floor=-math.inf).backward()
    torch.testing.assert_close(logp_s.grad, -torch.tensor([[0.5, -3.0, 0.0], [2.0, -3.0, 0.0]]) / 5)


def test_entropy_phase_mask_keeps_the_high_entropy_fraction():
    entropy = torch.tensor([[0.1, 0.9, 0.5, 7.0], [0.3, 0.8, 0.2, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    kept = entropy_phase_mask(entropy, mask, 0.5)    # 3 of 6 valid tokens: 0.9, 0.8, 0.5
    assert kept.tolist() == [[False, True, True, False], [False, True, False, False]]
    assert torch.equal(entropy_phase_mask(entropy, mask, 1.0), mask)


def test_chunked_entropy_matches_naive():
    s_hidden, _, s_head, _, mask = make_case(seed=4)
    h = s_hidden.detach()[mask]
    p = torch.softmax(s_head(h) / 1.3, -1)
    ref = -(p * p.log()).sum(-1)
    torch.testing.assert_close(chunked_token_entropy(h, s_head, tau=1.3, chunk_tokens=4).double(), ref,
                               rtol=1e-4, atol=1e-6)
