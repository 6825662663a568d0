"""Chunked divergences and the on-policy advantage loss against naive references."""

from __future__ import annotations

import math

import pytest
import torch

from motab.losses.divergences import (
    akl_weights,
    chunked_token_divergence,
    chunked_token_logprobs,
    token_divergence,
)
from motab.losses.onpolicy import discounted_advantages, onpolicy_advantage_loss

B, T, D_S, D_T, V = 3, 7, 8, 12, 50  # 15 valid tokens: chunk 4 does not divide them


def naive_divergence(
    s_logits: torch.Tensor, t_logits: torch.Tensor, mask: torch.Tensor, kind: str, tau: float, beta: float
) -> torch.Tensor:
    """Full-tensor, textbook form: probabilities, explicit mixture, plain logs."""
    p_s = torch.softmax(s_logits.double() / tau, -1)
    p_t = torch.softmax(t_logits.double() / tau, -1)

    def kl(p, q):
        return (p * (p.log() - q.log())).sum(-1)

    if kind == "fkl" or (kind == "jsd" and beta == 0):
        per_token = kl(p_t, p_s)
    elif kind == "rkl" or (kind == "jsd" and beta == 1):
        per_token = kl(p_s, p_t)
    else:
        m = beta * p_t + (1 - beta) * p_s
        per_token = beta * kl(p_t, m) + (1 - beta) * kl(p_s, m)
    mask = mask.double()
    return (per_token * mask).sum() / mask.sum()


def make_case(seed: int):
    gen = torch.Generator().manual_seed(seed)
    s_hidden = torch.randn(B, T, D_S, generator=gen, dtype=torch.float64)
    t_hidden = torch.randn(B, T, D_T, generator=gen, dtype=torch.float64)
    s_head = torch.nn.Linear(D_S, V, bias=False).double()
    t_head = torch.nn.Linear(D_T, V, bias=False).double()
    with torch.no_grad():
        s_head.weight.copy_(torch.randn(V, D_S, generator=gen, dtype=torch.float64))
        t_head.weight.copy_(torch.randn(V, D_T, generator=gen, dtype=torch.float64))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, :2] = False  # left padding
    mask[1, 5:] = False  # right padding
    mask[2, 0] = False
    mask[2, 3] = False  # a hole as well: 15 valid tokens
    return s_hidden.requires_grad_(True), t_hidden, s_head, t_head, mask


CASES = [
    ("fkl", 1.0, 0.5),
    ("rkl", 1.0, 0.5),
    ("jsd", 1.0, 0.5),
    ("jsd", 2.0, 0.1),
    ("jsd", 1.0, 0.0),
    ("jsd", 1.0, 1.0),
    ("rkl", 0.7, 0.5),
]


@pytest.mark.parametrize("kind,tau,beta", CASES)
@pytest.mark.parametrize("teacher_as_hidden", [True, False])
def test_chunked_divergence_matches_naive(kind, tau, beta, teacher_as_hidden):
    s_hidden, t_hidden, s_head, t_head, mask = make_case(seed=1)
    assert int(mask.sum()) % 4 != 0

    ref = naive_divergence(s_head(s_hidden), t_head(t_hidden), mask, kind, tau, beta)
    ref_grads = torch.autograd.grad(ref, [s_hidden, s_head.weight])

    teacher = t_hidden if teacher_as_hidden else t_head(t_hidden).detach()
    got = chunked_token_divergence(
        s_hidden,
        s_head,
        teacher,
        mask,
        kind,
        teacher_head=t_head if teacher_as_hidden else None,
        tau=tau,
        beta=beta,
        chunk_tokens=4,
    )
    got_grads = torch.autograd.grad(got, [s_hidden, s_head.weight])

    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-6)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-6)
    assert t_head.weight.grad is None


def test_divergences_vanish_when_equal_and_are_positive_otherwise():
    logits = torch.randn(5, V)
    for kind in ("fkl", "rkl", "jsd"):
        assert token_divergence(logits, logits, kind).abs().max() < 1e-5
        assert (token_divergence(logits, torch.randn(5, V), kind) > 0).all()


def test_chunked_divergence_without_valid_tokens_is_zero_with_gradient():
    s_hidden, t_hidden, s_head, t_head, mask = make_case(seed=2)
    loss = chunked_token_divergence(s_hidden, s_head, t_hidden, torch.zeros_like(mask), "rkl", teacher_head=t_head)
    loss.backward()
    assert loss.item() == 0.0 and s_hidden.grad is not None


def test_chunked_logprobs_match_naive():
    s_hidden, _, s_head, _, mask = make_case(seed=3)
    hidden = s_hidden[mask]
    targets = torch.randint(0, V, (hidden.shape[0],), generator=torch.Generator().manual_seed(0))
    ref = torch.log_softmax(s_head(hidden) / 1.3, -1).gather(-1, targets[:, None]).squeeze(-1)
    got = chunked_token_logprobs(hidden, s_head, targets, tau=1.3, chunk_tokens=4)
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-6)
    weights = torch.linspace(0.1, 1.0, ref.shape[0], dtype=torch.float64)
    ref_grad = torch.autograd.grad((ref * weights).sum(), s_head.weight)[0]
    got_grad = torch.autograd.grad((got.double() * weights).sum(), s_head.weight)[0]
    torch.testing.assert_close(got_grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_discounted_advantages_by_hand():
    kl = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    g = 0.5
    # A_2 = -3; A_1 = -(2 + 0.5*3) = -3.5; A_0 = -(1 + 0.5*2 + 0.25*3) = -2.75; the padded 9 is ignored
    expected = torch.tensor([[-2.75, -3.5, -3.0, 0.0]])
    torch.testing.assert_close(discounted_advantages(kl, mask, g), expected)
    torch.testing.assert_close(discounted_advantages(kl, mask, 0.0), torch.tensor([[-1.0, -2.0, -3.0, 0.0]]))


def test_discounted_advantages_stay_within_each_sequence():
    kl = torch.tensor([[1.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    got = discounted_advantages(kl, mask, 1.0)
    torch.testing.assert_close(got, torch.tensor([[-2.0, -1.0, 0.0], [-15.0, -10.0, -5.0]]))


@pytest.mark.parametrize("discount", [0.0, 0.9])
def test_advantage_loss_gradient_is_minus_advantage_at_ratio_one(discount):
    gen = torch.Generator().manual_seed(4)
    logp_sampler = -torch.rand(2, 5, generator=gen) * 3
    logp_teacher = -torch.rand(2, 5, generator=gen) * 3
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    logp_new = logp_sampler.clone().requires_grad_(True)  # same weights as the sampler: ratio 1
    loss = onpolicy_advantage_loss(logp_new, logp_sampler, logp_teacher, mask, discount)
    loss.backward()
    advantages = discounted_advantages(logp_sampler - logp_teacher, mask, discount)
    torch.testing.assert_close(logp_new.grad, -advantages * mask / mask.sum())
    # the loss value at ratio 1 is the mean (discounted) sampled reverse-KL estimate
    assert math.isclose(loss.item(), float(-(advantages * mask).sum() / mask.sum()), rel_tol=1e-5)
    if discount == 0.0:
        k = (logp_sampler - logp_teacher)[mask.bool()].mean()
        assert math.isclose(loss.item(), k.item(), rel_tol=1e-5)


def test_advantage_loss_is_an_unbiased_reverse_kl_gradient():
    """Sum over every possible sampled token y of p(y) * grad loss(y) equals grad KL(p_S || p_T)."""
    gen = torch.Generator().manual_seed(5)
    theta = torch.randn(1, V, generator=gen, dtype=torch.float64).requires_grad_(True)
    teacher_logits = torch.randn(1, V, generator=gen, dtype=torch.float64) * 2
    exact = torch.autograd.grad(token_divergence(theta, teacher_logits, "rkl").sum(), theta)[0]

    logp_all = torch.log_softmax(theta, -1)[0]
    logq_all = torch.log_softmax(teacher_logits, -1)[0]
    expected = torch.zeros_like(theta)
    for y in range(V):
        logp_new = logp_all[y].view(1, 1)
        loss = onpolicy_advantage_loss(logp_new, logp_new.detach(), logq_all[y].view(1, 1), torch.ones(1, 1))
        expected += logp_all[y].exp().detach() * torch.autograd.grad(loss, theta, retain_graph=True)[0]
    torch.testing.assert_close(expected, exact.double(), rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- skewed KL and AKL


def naive_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p * (p.log() - q.log())).sum(-1)


def naive_akl(p_s: torch.Tensor, p_t: torch.Tensor, mu: float) -> torch.Tensor:
    """Token by token, with Python sets: head = smallest top-p_T prefix with mass >= mu."""
    out = []
    for s_row, t_row in zip(p_s.reshape(-1, p_s.shape[-1]), p_t.reshape(-1, p_t.shape[-1])):
        order = sorted(range(t_row.shape[0]), key=lambda v: -float(t_row[v].detach()))
        head, mass = set(), 0.0
        for v in order:
            if mass >= mu:
                break
            head.add(v)
            mass += float(t_row[v].detach())
        gap = (t_row - s_row).abs().detach()
        g_h = sum(float(gap[v]) for v in head)
        g_t = float(gap.sum()) - g_h
        out.append(g_h / (g_h + g_t) * naive_kl(t_row, s_row) + g_t / (g_h + g_t) * naive_kl(s_row, t_row))
    return torch.stack(out).reshape(p_s.shape[:-1])


def naive_new_divergence(s_logits, t_logits, mask, kind, tau, param):
    p_s = torch.softmax(s_logits.double() / tau, -1)
    p_t = torch.softmax(t_logits.double() / tau, -1)
    if kind == "skl":
        per_token = naive_kl(p_t, param * p_t + (1 - param) * p_s)
    elif kind == "srkl":
        per_token = naive_kl(p_s, param * p_s + (1 - param) * p_t)
    else:
        per_token = naive_akl(p_s, p_t, param)
    mask = mask.double()
    return (per_token * mask).sum() / mask.sum()


NEW_CASES = [
    ("skl", 1.0, 0.1),
    ("skl", 2.0, 0.5),
    ("skl", 1.0, 0.0),
    ("srkl", 1.0, 0.1),
    ("srkl", 0.7, 0.3),
    ("akl", 1.0, 0.5),
    ("akl", 1.5, 0.9),
    ("akl", 1.0, 0.2),
]


@pytest.mark.parametrize("kind,tau,param", NEW_CASES)
@pytest.mark.parametrize("fused", [True, False])
def test_skewed_and_adaptive_kl_match_naive(kind, tau, param, fused):
    s_hidden, t_hidden, s_head, t_head, mask = make_case(seed=6)
    ref = naive_new_divergence(s_head(s_hidden), t_head(t_hidden), mask, kind, tau, param)
    ref_grads = torch.autograd.grad(ref, [s_hidden, s_head.weight])
    extra = {"skew": param} if kind != "akl" else {"mu": param}
    got = chunked_token_divergence(
        s_hidden, s_head, t_hidden, mask, kind, teacher_head=t_head, tau=tau, chunk_tokens=4, fused=fused, **extra
    )
    got_grads = torch.autograd.grad(got, [s_hidden, s_head.weight])
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-6)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind,tau,beta", CASES)
def test_checkpoint_backend_matches_naive(kind, tau, beta):
    s_hidden, t_hidden, s_head, t_head, mask = make_case(seed=7)
    ref = naive_divergence(s_head(s_hidden), t_head(t_hidden), mask, kind, tau, beta)
    ref_grads = torch.autograd.grad(ref, [s_hidden, s_head.weight])
    got = chunked_token_divergence(
        s_hidden, s_head, t_hidden, mask, kind, teacher_head=t_head, tau=tau, beta=beta, chunk_tokens=4, fused=False
    )
    got_grads = torch.autograd.grad(got, [s_hidden, s_head.weight])
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-6)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-6)


def test_fused_backend_handles_bias_frozen_heads_and_scaled_outputs():
    s_hidden, t_hidden, _, t_head, mask = make_case(seed=8)
    s_head = torch.nn.Linear(D_S, V, bias=True).double()
    ref = 3.0 * naive_divergence(s_head(s_hidden), t_head(t_hidden), mask, "fkl", 1.0, 0.5)
    ref_grads = torch.autograd.grad(ref, [s_hidden, s_head.weight, s_head.bias])
    got = 3.0 * chunked_token_divergence(s_hidden, s_head, t_hidden, mask, "fkl", teacher_head=t_head, chunk_tokens=4)
    got_grads = torch.autograd.grad(got, [s_hidden, s_head.weight, s_head.bias])
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-6)
    s_head.requires_grad_(False)  # a frozen head (LoRA): only the hidden states get a gradient
    got = chunked_token_divergence(s_hidden, s_head, t_hidden, mask, "fkl", teacher_head=t_head, chunk_tokens=4)
    torch.testing.assert_close(torch.autograd.grad(got, s_hidden)[0].double(), ref_grads[0] / 3.0, rtol=1e-4, atol=1e-6)
    with torch.no_grad():  # scoring only: no gradient buffers
        assert chunked_token_divergence(s_hidden, s_head, t_hidden, mask, "fkl", teacher_head=t_head).item() > 0


def test_akl_head_is_the_smallest_prefix_reaching_mu():
    # teacher (0.5, 0.3, 0.2): mu = 0.5 -> head {0}; mu = 0.6 -> head {0, 1}
    log_t = torch.tensor([[0.5, 0.3, 0.2]]).log()
    log_s = torch.tensor([[0.2, 0.3, 0.5]]).log()
    w_head, w_tail = akl_weights(log_s, log_t, 0.5)
    assert math.isclose(w_head.item(), 0.3 / 0.6, rel_tol=1e-6) and math.isclose(w_tail.item(), 0.3 / 0.6, rel_tol=1e-6)
    w_head, _ = akl_weights(log_s, log_t, 0.6)
    assert math.isclose(w_head.item(), 0.3 / 0.6, rel_tol=1e-6)  # |0.3-0.3| adds nothing to the head
    w_head, _ = akl_weights(log_s, log_t, 0.81)
    assert math.isclose(w_head.item(), 1.0, rel_tol=1e-6)


def test_new_divergences_vanish_when_equal():
    logits = torch.randn(5, V)
    for kind in ("skl", "srkl", "akl"):
        assert token_divergence(logits, logits, kind).abs().max() < 1e-5
        assert (token_divergence(logits, torch.randn(5, V), kind) > 0).all()


@pytest.mark.parametrize("kind,beta", [("fkl", 0.5), ("rkl", 0.5), ("jsd", 0.0), ("jsd", 1.0)])
@pytest.mark.parametrize("teacher_as_hidden", [True, False])
def test_closed_form_gradients_match_naive_with_a_padded_vocabulary(kind, beta, teacher_as_hidden):
    """fkl/rkl's fused backend computes the gradient in closed form, in place on each chunk's logits: the
    same value and gradients as full-tensor autograd, with a student vocabulary 3 rows longer (padding)."""
    import motab.losses.divergences as divergences

    s_hidden, t_hidden, _, t_head, mask = make_case(seed=9)
    s_head = torch.nn.Linear(D_S, V + 3, bias=True).double()
    tau = 1.3
    ref = divergences.token_divergence(s_head(s_hidden).double(), t_head(t_hidden), kind, tau, beta)
    ref = (ref * mask).sum() / mask.sum()
    ref_grads = torch.autograd.grad(ref, [s_hidden, s_head.weight, s_head.bias])
    teacher = t_hidden if teacher_as_hidden else t_head(t_hidden).detach()
    before = teacher.clone()
    got = chunked_token_divergence(
        s_hidden,
        s_head,
        teacher,
        mask,
        kind,
        teacher_head=t_head if teacher_as_hidden else None,
        tau=tau,
        beta=beta,
        chunk_tokens=4,
    )
    got_grads = torch.autograd.grad(got, [s_hidden, s_head.weight, s_head.bias])
    torch.testing.assert_close(got.double(), ref.double(), rtol=1e-4, atol=1e-6)
    for g, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(g.double(), r.double(), rtol=1e-4, atol=1e-6)
    assert torch.all(got_grads[1][V:] == 0) and torch.all(got_grads[2][V:] == 0)  # padding rows: no gradient
    assert torch.equal(teacher, before)  # the caller's teacher tensor is not overwritten
