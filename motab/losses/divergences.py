"""Per-token divergences between teacher and student, and the on-policy advantage loss.

Small pure functions over tensors (see ALGORITHMS.md, "Divergences" and "On-policy distillation").

Conventions
- Logits are divided by a temperature `tau` before the softmax; no tau**2 factor is applied.
- Divergences are computed in float32 whatever the input dtype.
- Reduction: sum over valid (mask = 1) tokens / number of valid tokens (0 when there are none).
- If the two vocabularies differ in size (padded embedding tables, e.g. Qwen2.5 0.5B vs 7B) both
  are cut to the shorter one; the extra rows are padding that no tokenizer produces.
- jsd(beta): m = beta p_T + (1 - beta) p_S, jsd = beta KL(p_T || m) + (1 - beta) KL(p_S || m), so
  beta is the TEACHER's weight in the mixture. This is the same interior formula as TRL's current
  GKDTrainer.generalized_jsd_loss; like TRL, the endpoints are special-cased to the limits GKD
  names: beta = 0 is forward KL(p_T || p_S), beta = 1 is reverse KL(p_S || p_T). (Some older TRL
  releases put beta on the student in the mixture; a beta from such a config maps to 1 - beta.)

Memory: `chunked_token_divergence` and `chunked_token_logprobs` take hidden states (tokens x d)
and the output heads, and compute logits one chunk of tokens at a time inside
torch.utils.checkpoint, so backward recomputes each chunk's logits instead of keeping them: at
most one chunk of fp32 logits per model is alive at a time, never the full [tokens, |V|] tensors.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

KINDS = ("fkl", "rkl", "jsd")

Head = Callable[[torch.Tensor], torch.Tensor]


def _common_vocab(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])
    return student_logits[..., :vocab], teacher_logits[..., :vocab]


def token_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, kind: str,
                     tau: float = 1.0, beta: float = 0.5) -> torch.Tensor:
    """Divergence per token: [..., V] x [..., V] -> [...] (float32). Teacher logits get no gradient."""
    if kind not in KINDS:
        raise ValueError(f"divergence kind must be one of {KINDS}, found {kind!r}")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"jsd beta must lie in [0, 1], found {beta}")
    student_logits, teacher_logits = _common_vocab(student_logits, teacher_logits.detach())
    log_s = F.log_softmax(student_logits.float() / tau, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / tau, dim=-1)
    if kind == "jsd" and beta == 0.0:
        kind = "fkl"
    elif kind == "jsd" and beta == 1.0:
        kind = "rkl"
    if kind == "fkl":
        return (log_t.exp() * (log_t - log_s)).sum(-1)
    if kind == "rkl":
        return (log_s.exp() * (log_s - log_t)).sum(-1)
    log_m = torch.logaddexp(log_t + math.log(beta), log_s + math.log1p(-beta))
    kl_t = (log_t.exp() * (log_t - log_m)).sum(-1)
    kl_s = (log_s.exp() * (log_s - log_m)).sum(-1)
    return beta * kl_t + (1.0 - beta) * kl_s


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    if size < 1:
        raise ValueError(f"chunk_tokens must be >= 1, found {size}")
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def chunked_token_divergence(student_hidden: torch.Tensor, student_head: Head, teacher: torch.Tensor,
                             mask: torch.Tensor, kind: str, *, teacher_head: Head | None = None,
                             tau: float = 1.0, beta: float = 0.5, chunk_tokens: int = 1024) -> torch.Tensor:
    """Mean divergence over valid tokens, logits built chunk by chunk and recomputed in backward.

    student_hidden: [..., d_s] final hidden states at the positions that predict the response
    tokens (with grad); student_head maps [n, d_s] -> [n, V] (e.g. model.lm_head).
    teacher: [..., d_t] hidden states when teacher_head is given (KDFlow's form: the teacher's
    lm_head is applied on the student side), else [..., V] logits. mask: [...] (1 = valid).
    """
    valid = mask.bool()
    hidden = student_hidden[valid]
    target = teacher[valid].detach()
    count = hidden.shape[0]
    if count == 0:
        return student_hidden.sum() * 0.0

    def chunk_sum(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if teacher_head is not None:
            with torch.no_grad():
                t = teacher_head(t)
        return token_divergence(student_head(h), t, kind, tau=tau, beta=beta).sum()

    total = hidden.new_zeros((), dtype=torch.float32)
    for start, end in _chunks(count, chunk_tokens):
        total = total + checkpoint(chunk_sum, hidden[start:end], target[start:end], use_reentrant=False)
    return total / count


def chunked_token_logprobs(hidden: torch.Tensor, head: Head, targets: torch.Tensor, *, tau: float = 1.0,
                           chunk_tokens: int = 1024) -> torch.Tensor:
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
        out.append(checkpoint(chunk_logprobs, h, y, use_reentrant=False) if torch.is_grad_enabled()
                   else chunk_logprobs(h, y))
    return torch.cat(out) if out else hidden.new_zeros((0,), dtype=torch.float32)


def discounted_advantages(kl: torch.Tensor, mask: torch.Tensor, discount: float = 0.0) -> torch.Tensor:
    """A_t = -sum_{t' >= t, valid} discount^(t' - t) k_t' within each row of [B, T] (0 at invalid t).

    discount = 0 gives A_t = -k_t. Rows are sequences; the time loop is over T, vectorised over B.
    """
    kl = kl.detach().float() * mask.float()
    if discount == 0.0:
        return -kl
    if not 0.0 < discount <= 1.0:
        raise ValueError(f"kl discount must lie in [0, 1], found {discount}")
    running = torch.zeros_like(kl[:, 0])
    out = torch.empty_like(kl)
    for t in range(kl.shape[1] - 1, -1, -1):
        running = kl[:, t] + discount * running
        out[:, t] = running
    return -out * mask.float()


def onpolicy_advantage_loss(logp_new: torch.Tensor, logp_sampler: torch.Tensor, logp_teacher: torch.Tensor,
                            mask: torch.Tensor, discount: float = 0.0) -> torch.Tensor:
    """Tinker's per-token reverse-KL on-policy distillation loss over [B, T] response tokens.

    k_t = logp_sampler - logp_teacher; A_t = discounted_advantages(k) (no gradient);
    loss = -sum_t A_t * exp(logp_new - logp_sampler) / number of valid tokens, so at ratio 1 the
    gradient is -A_t * d logp_new_t / N: a policy gradient with the negative per-token KL as reward.
    """
    valid = mask.float()
    advantages = discounted_advantages(logp_sampler.detach() - logp_teacher.detach(), mask, discount)
    ratio = torch.exp(logp_new.float() - logp_sampler.detach().float())
    count = valid.sum().clamp_min(1.0)
    return -(advantages * ratio * valid).sum() / count
