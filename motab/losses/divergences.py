"""Per-token divergences between teacher and student (the on-policy advantage loss: motab.losses.onpolicy).

Small pure functions over tensors; the conventions below are their definitions (the kd-block losses
built on them: docs/kd.md).

Conventions
- Logits are divided by a temperature `tau` before the softmax; no tau**2 factor is applied.
- Divergences are computed in float32 whatever the input dtype.
- Reduction: sum over valid (mask = 1) tokens / number of valid tokens (0 when there are none),
  unless explicit per-token weights are given (`chunked_token_loss(weights=...)`).
- If the two vocabularies differ in size (padded embedding tables, e.g. Qwen2.5 0.5B vs 7B) both
  are cut to the shorter one; the extra rows are padding that no tokenizer produces.
- jsd(beta): m = beta p_T + (1 - beta) p_S, jsd = beta KL(p_T || m) + (1 - beta) KL(p_S || m), so
  beta is the TEACHER's weight in the mixture. This is the same interior formula as TRL's current
  GKDTrainer.generalized_jsd_loss; like TRL, the endpoints are special-cased to the limits GKD
  names: beta = 0 is forward KL(p_T || p_S), beta = 1 is reverse KL(p_S || p_T). (Some older TRL
  releases put beta on the student in the mixture; a beta from such a config maps to 1 - beta.)
- skl(lambda) = KL(p_T || lambda p_T + (1 - lambda) p_S)   (skewed forward KL, DistiLLM)
  srkl(lambda) = KL(p_S || lambda p_S + (1 - lambda) p_T)  (skewed reverse KL); lambda = `skew`.
- akl(mu) (adaptive KL, Wu et al. 2024): sort V by p_T (descending); the head is the smallest
  prefix whose teacher mass is >= mu, the tail the rest; g_h, g_t = sums of |p_T - p_S| over head
  and tail; akl = g_h/(g_h+g_t) fkl + g_t/(g_h+g_t) rkl with the two weights detached. (Wu et al.'s
  code sorts ascending and calls "tail" the low-probability tokens whose cumulative mass is < mu;
  that puts the boundary at teacher mass 1 - mu. This module follows the wording above.)

Memory: `chunked_token_loss` (and `chunked_token_divergence` built on it) take hidden states
(tokens x d) and the output heads and build logits one chunk of tokens at a time, so at most one
chunk of fp32 logits per model is alive, never the full [tokens, |V|] tensors. Two backends:
- fused (used when the student head is a torch.nn.Linear): the forward pass of each chunk also
  computes the gradient of that chunk's loss with respect to its logits and turns it at once into
  gradients for the hidden states and the head weight, kept until backward. Four big matmuls in
  all (student and teacher logits, two gradient matmuls), as in the naive computation, plus one
  [|V|, d] gradient buffer. fkl and rkl (and jsd at beta 0 or 1) get that gradient in closed form,
  in place on the two chunk logits tensors (`_kl_chunk`: three [chunk, |V|] float32 tensors alive
  at most); the other kinds by a local autograd over the chunk.
- checkpoint (any callable head): each chunk runs inside torch.utils.checkpoint, so backward
  recomputes that chunk's logits (six big matmuls: both heads run twice).
`chunked_token_logprobs` uses the checkpoint form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

KINDS = ("fkl", "rkl", "jsd", "skl", "srkl", "akl")

Head = Callable[[torch.Tensor], torch.Tensor]
# per-token loss: (student logits [n, V] with grad, teacher logits [n, V]) -> [n] float32
TokenLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# one chunk of the fused backend: (student logits [n, V], teacher logits [n, V], weights [n], need_grad)
#   -> (sum_t w_t loss_t, d sum / d student logits [n, V] or None); may overwrite both logits tensors
ChunkLossGrad = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]]


def _common_vocab(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])
    return student_logits[..., :vocab], teacher_logits[..., :vocab]


def log_probs(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p_S, log p_T) in float32 over the common vocabulary at temperature tau; teacher detached."""
    student_logits, teacher_logits = _common_vocab(student_logits, teacher_logits.detach())
    return (F.log_softmax(student_logits.float() / tau, dim=-1), F.log_softmax(teacher_logits.float() / tau, dim=-1))


def kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _mixture(log_a: torch.Tensor, log_b: torch.Tensor, weight_a: float) -> torch.Tensor:
    """log(weight_a a + (1 - weight_a) b), 0 < weight_a < 1."""
    return torch.logaddexp(log_a + math.log(weight_a), log_b + math.log1p(-weight_a))


def akl_weights(log_s: torch.Tensor, log_t: torch.Tensor, mu: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(head weight g_h/(g_h+g_t), tail weight g_t/(g_h+g_t)) per token, without gradient."""
    with torch.no_grad():
        p_t, p_s = log_t.exp(), log_s.exp()
        sorted_t, order = p_t.sort(dim=-1, descending=True)
        in_head = (sorted_t.cumsum(-1) - sorted_t) < mu  # mass before this token < mu
        gap = (sorted_t - p_s.gather(-1, order)).abs()
        g_head = (gap * in_head).sum(-1)
        g_tail = (gap * ~in_head).sum(-1)
        total = (g_head + g_tail).clamp_min(torch.finfo(gap.dtype).tiny)
        return g_head / total, g_tail / total


def token_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    kind: str,
    tau: float = 1.0,
    beta: float = 0.5,
    *,
    skew: float = 0.1,
    mu: float = 0.5,
) -> torch.Tensor:
    """Divergence per token: [..., V] x [..., V] -> [...] (float32). Teacher logits get no gradient.

    beta: jsd's teacher weight; skew: the lambda of skl/srkl (in [0, 1)); mu: akl's head mass.
    """
    if kind not in KINDS:
        raise ValueError(f"divergence kind must be one of {KINDS}, found {kind!r}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"jsd beta must lie in [0, 1], found {beta}")
    if not 0.0 <= skew < 1.0:
        raise ValueError(f"skew lambda must lie in [0, 1), found {skew}")
    if not 0.0 < mu <= 1.0:
        raise ValueError(f"akl mu must lie in (0, 1], found {mu}")
    log_s, log_t = log_probs(student_logits, teacher_logits, tau)
    if kind == "jsd" and beta == 0.0:
        kind = "fkl"
    elif kind == "jsd" and beta == 1.0:
        kind = "rkl"
    if kind == "fkl":
        return kl(log_t, log_s)
    if kind == "rkl":
        return kl(log_s, log_t)
    if kind == "skl":
        return kl(log_t, _mixture(log_t, log_s, skew) if skew > 0 else log_s)
    if kind == "srkl":
        return kl(log_s, _mixture(log_s, log_t, skew) if skew > 0 else log_t)
    if kind == "akl":
        w_head, w_tail = akl_weights(log_s, log_t, mu)
        return w_head * kl(log_t, log_s) + w_tail * kl(log_s, log_t)
    log_m = _mixture(log_t, log_s, beta)
    return beta * kl(log_t, log_m) + (1.0 - beta) * kl(log_s, log_m)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    if size < 1:
        raise ValueError(f"chunk_tokens must be >= 1, found {size}")
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _autograd_chunk(token_loss: TokenLoss) -> ChunkLossGrad:
    """A ChunkLossGrad from a per-token loss: the gradient by a local autograd over the chunk's logits."""

    def loss_and_grad(
        logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, need_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.enable_grad():
            logits.requires_grad_(need_grad)
            chunk = (token_loss(logits, target) * weights).sum()
            grad = torch.autograd.grad(chunk, logits)[0] if need_grad else None
        return chunk.detach(), grad

    return loss_and_grad


def _log_softmax_(x: torch.Tensor, tau: float) -> torch.Tensor:
    """log_softmax(x / tau) over the last axis, in place on float32 x."""
    if tau != 1.0:
        x.div_(tau)
    x.sub_(x.amax(-1, keepdim=True))
    return x.sub_(x.exp().sum(-1, keepdim=True).log_())


def _kl_chunk(kind: str, tau: float) -> ChunkLossGrad:
    """fkl or rkl of a chunk with its gradient w.r.t. the student logits in closed form (no autograd).

    With log p = log_softmax(z / tau) and per-token weights w_t:
      fkl = sum_v p_T (log p_T - log p_S),   d/dz_S = w_t (p_S - p_T) / tau;
      rkl = sum_v p_S (log p_S - log p_T),   d/dz_S = w_t p_S (log p_S - log p_T - rkl_t) / tau.
    Works in place on both logits tensors (float32 ones are overwritten; the gradient is returned in
    one of them): one more [chunk, |V|] float32 tensor is alive at a time (p_T, p_S or exp's output).
    """

    def loss_and_grad(
        logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, need_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        vocab = min(logits.shape[-1], target.shape[-1])
        log_s = _log_softmax_(logits[:, :vocab].float(), tau)  # in place when float32
        log_t = _log_softmax_(target[:, :vocab].float(), tau)
        scale = weights.unsqueeze(-1) / tau
        if kind == "fkl":
            p_t = log_t.exp()
            per_token = log_t.sub_(log_s).mul_(p_t).sum(-1)  # sum p_T (log p_T - log p_S)
            grad = log_s.exp_().sub_(p_t).mul_(scale) if need_grad else None  # w (p_S - p_T) / tau
        else:
            p_s = log_s.exp()
            grad = log_t.neg_().add_(log_s).mul_(p_s)  # p_S (log p_S - log p_T)
            per_token = grad.sum(-1)
            if need_grad:
                grad.addcmul_(p_s, per_token.unsqueeze(-1), value=-1.0).mul_(scale)
        loss = (per_token * weights).sum()
        if not need_grad:
            return loss, None
        if vocab < logits.shape[-1]:  # columns beyond the common vocabulary: no gradient
            full = torch.zeros_like(logits)
            full[:, :vocab] = grad
            return loss, full
        return loss, grad.to(logits.dtype)

    return loss_and_grad


class _FusedLinearTokenLoss(torch.autograd.Function):
    """sum_t w_t loss(h_t W^T (+ b), teacher_t) with gradients computed chunk by chunk in forward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, teacher, token_weights, chunk_loss, teacher_head, chunk_tokens, grads):
        need = tuple(
            grads and n for n in (hidden.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
        )
        grad_hidden = torch.zeros_like(hidden) if need[0] else None
        grad_weight = torch.zeros_like(weight) if need[1] else None
        grad_bias = torch.zeros_like(bias) if need[2] else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start, end in _chunks(hidden.shape[0], chunk_tokens):
            h = hidden[start:end]
            with torch.no_grad():
                target = teacher[start:end] if teacher_head is None else teacher_head(teacher[start:end])
                # chunk_loss may overwrite both logits tensors (they are this chunk's own)
                chunk, grad_logits = chunk_loss(F.linear(h, weight, bias), target, token_weights[start:end], any(need))
            del target
            total += chunk
            if grad_logits is None:
                continue
            if need[0]:
                torch.mm(grad_logits, weight, out=grad_hidden[start:end])
            if need[1]:
                grad_weight.addmm_(grad_logits.t(), h)
            if need[2]:
                grad_bias += grad_logits.sum(0)
            del grad_logits
        ctx.save_for_backward(*(g for g in (grad_hidden, grad_weight, grad_bias) if g is not None))
        ctx.need = need
        return total

    @staticmethod
    def backward(ctx, grad_out):
        saved = iter(ctx.saved_tensors)
        unit = bool(grad_out == 1.0)  # the usual case (loss.backward()): hand the buffers over, no copy
        grads = [(next(saved) if unit else next(saved) * grad_out) if n else None for n in ctx.need]
        return grads[0], grads[1], grads[2], None, None, None, None, None, None


def _token_weights(weights: torch.Tensor | None, valid: torch.Tensor, count: int, device: torch.device) -> torch.Tensor:
    """The float32 weights of the count valid tokens (no gradient): 1 / count each (the mean) by default."""
    if weights is None:
        return torch.full((count,), 1.0 / count, dtype=torch.float32, device=device)
    return weights.detach()[valid].float()


def _checkpointed_token_loss(
    hidden: torch.Tensor,
    student_head: Head,
    target: torch.Tensor,
    token_weights: torch.Tensor,
    token_loss: TokenLoss,
    teacher_head: Head | None,
    chunk_tokens: int,
) -> torch.Tensor:
    """The checkpoint backend (any callable head): each chunk's logits are recomputed in backward."""

    def chunk_sum(h: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if teacher_head is not None:
            with torch.no_grad():
                t = teacher_head(t)
        return (token_loss(student_head(h), t) * w).sum()

    total = hidden.new_zeros((), dtype=torch.float32)
    for start, end in _chunks(hidden.shape[0], chunk_tokens):
        total = total + checkpoint(
            chunk_sum, hidden[start:end], target[start:end], token_weights[start:end], use_reentrant=False
        )
    return total


def chunked_token_loss(
    student_hidden: torch.Tensor,
    student_head: Head,
    teacher: torch.Tensor,
    mask: torch.Tensor,
    token_loss: TokenLoss,
    *,
    teacher_head: Head | None = None,
    weights: torch.Tensor | None = None,
    chunk_tokens: int = 1024,
    fused: bool | None = None,
    chunk_loss: ChunkLossGrad | None = None,
) -> torch.Tensor:
    """sum over valid tokens of weight_t * token_loss_t, logits built chunk by chunk.

    student_hidden: [..., d_s] final hidden states at the positions that predict the response
    tokens (with grad); student_head maps [n, d_s] -> [n, V] (e.g. model.lm_head).
    teacher: [..., d_t] hidden states when teacher_head is given (KDFlow's form: the teacher's
    lm_head is applied on the student side), else [..., V] logits. mask: [...] (1 = valid).
    weights: [...] per-token weights (default 1 / number of valid tokens: the mean).
    fused: None picks the fused backend when student_head is a torch.nn.Linear (see module doc).
    chunk_loss: the fused backend's loss and gradient of one chunk in closed form (same value as
    token_loss); by default a local autograd of token_loss.
    """
    valid = mask.bool()
    hidden = student_hidden[valid]
    target = teacher[valid].detach()
    count = hidden.shape[0]
    if count == 0:
        return student_hidden.sum() * 0.0
    token_weights = _token_weights(weights, valid, count, hidden.device)
    if fused is None:
        fused = isinstance(student_head, torch.nn.Linear)
    if fused:
        if not isinstance(student_head, torch.nn.Linear):
            raise TypeError(f"the fused backend needs a torch.nn.Linear head, found {type(student_head).__name__}")
        return _FusedLinearTokenLoss.apply(
            hidden,
            student_head.weight,
            student_head.bias,
            target,
            token_weights,
            chunk_loss or _autograd_chunk(token_loss),
            teacher_head,
            chunk_tokens,
            torch.is_grad_enabled(),
        )
    return _checkpointed_token_loss(hidden, student_head, target, token_weights, token_loss, teacher_head, chunk_tokens)


def chunked_token_divergence(
    student_hidden: torch.Tensor,
    student_head: Head,
    teacher: torch.Tensor,
    mask: torch.Tensor,
    kind: str,
    *,
    teacher_head: Head | None = None,
    tau: float = 1.0,
    beta: float = 0.5,
    skew: float = 0.1,
    mu: float = 0.5,
    chunk_tokens: int = 1024,
    fused: bool | None = None,
) -> torch.Tensor:
    """Mean `token_divergence(kind)` over valid tokens, computed in chunks (see chunked_token_loss)."""
    token_divergence(torch.zeros(1, 2), torch.zeros(1, 2), kind, tau, beta, skew=skew, mu=mu)  # validate early

    def per_token(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return token_divergence(s, t, kind, tau, beta, skew=skew, mu=mu)

    closed = kind if kind in ("fkl", "rkl") else None  # kinds whose fused gradient is in closed form
    if kind == "jsd" and beta in (0.0, 1.0):
        closed = "fkl" if beta == 0.0 else "rkl"
    return chunked_token_loss(
        student_hidden,
        student_head,
        teacher,
        mask,
        per_token,
        teacher_head=teacher_head,
        chunk_tokens=chunk_tokens,
        fused=fused,
        chunk_loss=_kl_chunk(closed, tau) if closed else None,
    )


def chunked_token_logprobs(
    hidden: torch.Tensor, head: Head, targets: torch.Tensor, *, tau: float = 1.0, chunk_tokens: int = 1024
) -> torch.Tensor:
    """log softmax(head(hidden) / tau)[target] per token: [n, d] x [n] -> [n] float32, chunked.

    Gradients flow to `hidden` and the head's parameters; each chunk's logits are recomputed in
    backward. Call under torch.no_grad() for scoring (then nothing is kept at all).
    """

    def chunk_logprobs(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(head(h).float() / tau, dim=-1)
        return logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)

    out = []
    for start, end in _chunks(hidden.shape[0], chunk_tokens):
        h, y = hidden[start:end], targets[start:end]
        out.append(
            checkpoint(chunk_logprobs, h, y, use_reentrant=False) if torch.is_grad_enabled() else chunk_logprobs(h, y)
        )
    return torch.cat(out) if out else hidden.new_zeros((0,), dtype=torch.float32)


@torch.no_grad()
def chunked_token_entropy(
    hidden: torch.Tensor, head: Head, *, tau: float = 1.0, chunk_tokens: int = 1024
) -> torch.Tensor:
    """Entropy of softmax(head(hidden) / tau) per token: [n, d] -> [n] float32, chunked, no gradient."""
    out = []
    for start, end in _chunks(hidden.shape[0], chunk_tokens):
        logp = F.log_softmax(head(hidden[start:end]).float() / tau, dim=-1)
        out.append(-(logp.exp() * logp).sum(-1))
    return torch.cat(out) if out else hidden.new_zeros((0,), dtype=torch.float32)
