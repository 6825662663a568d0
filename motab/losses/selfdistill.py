"""The on-policy self-distillation family (ALGORITHMS.md): OPSD, EOPD, REOPOLD, PW-OPSD.

Per-token losses are functions (student logits [n, V], teacher logits [n, V]) -> [n] in float32,
to be summed chunk by chunk with `motab.losses.divergences.chunked_token_loss`; the reductions are
separate pure functions. The teacher is the model's own starting weights scored with privileged
context (problem + reference solution); the student sees the problem only; both score the same
student-sampled response tokens (see motab.training.onpolicy).

- OPSD: forward KL at temperature tau (1.1 in the PW-OPSD release), clipped at `clip` (0.05).
  RECONSTRUCTION, default clip_mode="token": each token's fkl_t is clamped from above,
  min(fkl_t, clip), before averaging (a token above the clip contributes no gradient).
  Alternative clip_mode="logratio": the per-vocabulary log-ratio is clamped from above inside the
  sum, sum_v p_T(v) min(log p_T(v) - log p_S(v), clip).
- EOPD: a_t fkl_t + (1 - a_t) rkl_t with a_t = H_T,t / log|V| (teacher entropy at tau, normalised,
  detached): RECONSTRUCTION of "a function of the normalised entropy".
- REOPOLD: -sum_t max(r_t, r_min) log p_S(y_t) / N over valid tokens inside the phase mask, with
  r_t = log p_T(y_t) - log p_S(y_t) detached. The published floor was not found in a primary source;
  a secondary summary describes REOPOLD's "mixture-based reward clipping" as
  max(sg(r_t), log(lambda / (1 - lambda))). `reward_floor` is exposed (default REOPOLD_FLOOR).
  The phase mask is any [B, T] boolean tensor; `entropy_phase_mask` builds REOPOLD-style
  "entropy-based token-level dynamic sampling" (keep the highest-entropy fraction of tokens),
  also a RECONSTRUCTION.
- PW-OPSD: OPSD's clipped fkl_t with increasing position weights
  w(u) = w_min + (1 - w_min) sigmoid((u - tau) / s), u = t / T, t = 1..T the position among the
  response's valid tokens and T their number; L_seq = sum_t w_t l_t / sum_t w_t, mean over sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from motab.losses.divergences import kl, log_probs

CLIP_MODES = ("token", "logratio")
REOPOLD_FLOOR = math.log(0.2)   # placeholder floor (about -1.61), not a published REOPOLD value


@dataclass(frozen=True)
class PositionSchedule:
    """PW-OPSD position weight w(u) = w_min + (1 - w_min) * sigmoid((u - tau) / s)."""

    w_min: float
    tau: float
    s: float


PW_PRESETS = {
    "moderate": PositionSchedule(w_min=0.25, tau=0.30, s=0.10),    # the paper's named Moderate schedule
    # "a lower w_min": 0.10 keeps every token in the loss while giving the first tokens 2.5x less
    # weight than Moderate; our choice, the paper's exact value was not found
    "aggressive": PositionSchedule(w_min=0.10, tau=0.30, s=0.10),
}


# ----------------------------------------------------------------------------- per-token losses

def opsd_token_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.1,
                    clip: float = 0.05, clip_mode: str = "token") -> torch.Tensor:
    """OPSD's clipped forward KL per token (see the module doc for the two clip modes)."""
    if clip_mode not in CLIP_MODES:
        raise ValueError(f"clip_mode must be one of {CLIP_MODES}, found {clip_mode!r}")
    if clip <= 0:
        raise ValueError(f"clip must be > 0, found {clip}")
    log_s, log_t = log_probs(student_logits, teacher_logits, tau)
    if clip_mode == "token":
        return kl(log_t, log_s).clamp(max=clip)
    return (log_t.exp() * (log_t - log_s).clamp(max=clip)).sum(-1)


def teacher_normalised_entropy(log_t: torch.Tensor) -> torch.Tensor:
    """H(p_T) / log|V| per token, in [0, 1], without gradient."""
    with torch.no_grad():
        return -(log_t.exp() * log_t).sum(-1) / math.log(log_t.shape[-1])


def eopd_token_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """a_t fkl_t + (1 - a_t) rkl_t with a_t the teacher's normalised entropy (detached)."""
    log_s, log_t = log_probs(student_logits, teacher_logits, tau)
    a = teacher_normalised_entropy(log_t)
    return a * kl(log_t, log_s) + (1.0 - a) * kl(log_s, log_t)


# ----------------------------------------------------------------------------- PW-OPSD weights

def relative_positions(mask: torch.Tensor) -> torch.Tensor:
    """u = t / T for each valid token of each row of [B, M] (t = 1..T among the valid tokens; 0 elsewhere)."""
    valid = mask.float()
    t = valid.cumsum(-1)
    total = valid.sum(-1, keepdim=True).clamp_min(1.0)
    return t / total * valid


def position_weights(mask: torch.Tensor, schedule: PositionSchedule) -> torch.Tensor:
    """w_t = w_min + (1 - w_min) sigmoid((u_t - tau) / s) at valid tokens of [B, M], 0 elsewhere."""
    if not 0.0 <= schedule.w_min <= 1.0 or schedule.s <= 0:
        raise ValueError(f"position schedule needs 0 <= w_min <= 1 and s > 0, found {schedule}")
    u = relative_positions(mask)
    w = schedule.w_min + (1.0 - schedule.w_min) * torch.sigmoid((u - schedule.tau) / schedule.s)
    return w * mask.float()


def per_sequence_token_weights(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """c_t with sum_t c_t l_t = mean over sequences with a valid token of (sum_t w_t l_t / sum_t w_t)."""
    w = weights.float() * mask.float()
    row_sum = w.sum(-1, keepdim=True)
    sequences = (row_sum > 0).sum().clamp_min(1)
    return torch.where(row_sum > 0, w / row_sum.clamp_min(1e-30), torch.zeros_like(w)) / sequences


def per_sequence_reduction(token_losses: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over sequences of sum_t w_t l_t / sum_t w_t, over [B, M] tensors (the unchunked form)."""
    return (per_sequence_token_weights(weights, mask) * token_losses.float() * mask.float()).sum()


# ----------------------------------------------------------------------------- REOPOLD

def reopold_loss(logp_student: torch.Tensor, logp_teacher: torch.Tensor, mask: torch.Tensor,
                 reward_floor: float = REOPOLD_FLOOR, phase_mask: torch.Tensor | None = None) -> torch.Tensor:
    """-sum_t max(r_t, r_min) log p_S(y_t) / N over [B, M] tokens that are valid and in the phase.

    r_t = log p_T(y_t) - log p_S(y_t) with no gradient; N = number of such tokens (0 loss if none).
    The gradient is -max(r_t, r_min) d log p_S(y_t) / N: a policy gradient with the clipped reward.
    """
    keep = mask.bool() if phase_mask is None else mask.bool() & phase_mask.bool()
    reward = (logp_teacher.detach().float() - logp_student.detach().float()).clamp(min=reward_floor)
    count = keep.sum().clamp_min(1)
    return -(reward * logp_student.float() * keep).sum() / count


def entropy_phase_mask(entropy: torch.Tensor, mask: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """Keep the ceil(keep_fraction * N) valid tokens of highest entropy (ties: all tokens at the cut)."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep fraction must lie in (0, 1], found {keep_fraction}")
    valid = mask.bool()
    if keep_fraction == 1.0 or not valid.any():
        return valid
    values = entropy[valid]
    k = math.ceil(keep_fraction * values.numel())
    cut = values.topk(k).values.min()
    return valid & (entropy >= cut)
