"""Tinker's on-policy distillation loss: per-token reverse-KL advantages (METHODS.md, "Tinker recipe
and KDFlow", and its `rkl_onpolicy` note under "Self-distillation losses").

Over [B, T] response tokens (rows are sequences, mask 1 = valid); float32 whatever the input dtype.
"""

from __future__ import annotations

import torch


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


def onpolicy_advantage_loss(
    logp_new: torch.Tensor,
    logp_sampler: torch.Tensor,
    logp_teacher: torch.Tensor,
    mask: torch.Tensor,
    discount: float = 0.0,
) -> torch.Tensor:
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
