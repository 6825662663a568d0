"""The on-policy self-distillation family as the PW-OPSD release trains it: OPSD, EOPD, REOPOLD, PW-OPSD.

The specification is SaFo-Lab/PW-OPSD (code/opsd_trainer.py `generalized_jsd_loss`, code/ea_opsd_trainer.py
`EAOPSDTrainer.compute_loss`; METHODS.md, "Self-distillation losses", lists every difference from the
paper and which `compat` mode reproduces it). Losses are pure functions over tensors in float32; the
per-token ones take (student logits [n, V], teacher logits [n, V]) -> [n] so that
`motab.losses.divergences.chunked_token_loss` can sum them chunk by chunk, and every [B, T] helper
here has an unchunked form the golden tests compare with the release. kd-train calls
`selfdistill_loss` (the last section): the same losses for one batch of hidden states, chunked.

- OPSD: forward KL at temperature tau (1.1). compat "released": each vocabulary entry's term
  p_T(v) (log p_T(v) - log p_S(v)) is clamped at `clip` (0.05) BEFORE the sum over v (the release
  clamps F.kl_div's [B, T, V] output); compat "paper": each token's whole KL is clamped (the release's
  own help text and the paper: "clip per-token divergence"). Mean over valid tokens.
- PW-OPSD: OPSD's clipped KL l_t times w_t = w_min + (1 - w_min) sigmoid((u_t - tau) / s) with
  u_t = (i - 0.5) / T (i = 1..T among the row's valid tokens), each sequence's sum_t w_t l_t divided
  by its token count T, then the mean over sequences with a valid token.
- EOPD: L_OPD_t + 1[H_T,t > 0.8] L_FKL_t, mean over valid tokens. L_OPD is the PPO-clipped (eps 0.2)
  sampled-token term max(-r A, -clip(r, 1 - eps, 1 + eps) A), A = log p_T(y_t) - log p_S(y_t)
  detached, r = p_S / sg(p_S) (= 1, gradient of log p_S). L_FKL is the forward KL from the teacher
  renormalised over its top 16 logits to the student's FULL-vocabulary log-probabilities there.
  H_T is the teacher's full-vocabulary entropy; everything at temperature tau.
- REOPOLD: -(1/sum M) sum_t M_t max(R_t, f) log p_S(y_t), R_t = log p_T(y_t) - log p_S(y_t)
  (stop-gradient, at tau), floor f = log(lambda) / (1 - lambda) (lambda 0.1: -2.56). Phase I
  (0-based step < t_switch): M = 1[R >= f], tokens below the floor dropped. Phase II:
  M = 1[H_S >= the (1 - beta) quantile of the valid tokens' student entropy] (beta 0.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from motab.losses.divergences import (
    Head,
    chunked_token_entropy,
    chunked_token_logprobs,
    chunked_token_loss,
    kl,
    log_probs,
)
from motab.losses.selfdistill_defaults import (  # noqa: F401 (re-exported)
    COMPATS,
    PW_PRESETS,
    REOPOLD_BETA,
    REOPOLD_LAMBDA,
    REOPOLD_T_SWITCH,
    PositionSchedule,
)

EOPD_ENTROPY_THRESHOLD = 0.8  # the release's tau, hard-coded in ea_opsd_trainer.py
EOPD_TOP_K = 16
EOPD_PPO_EPS = 0.2


def _check_compat(compat: str) -> None:
    if compat not in COMPATS:
        raise ValueError(f"compat must be one of {COMPATS}, found {compat!r}")


# ----------------------------------------------------------------------------- OPSD / PW-OPSD


def opsd_token_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float = 1.1,
    clip: float = 0.05,
    compat: str = "released",
) -> torch.Tensor:
    """OPSD's clipped forward KL per token: [n, V] x [n, V] -> [n] (clip <= 0: no clip)."""
    _check_compat(compat)
    log_s, log_t = log_probs(student_logits, teacher_logits, tau)
    if compat == "paper":
        token = kl(log_t, log_s)
        return token.clamp(max=clip) if clip > 0 else token
    entries = log_t.exp() * (log_t - log_s)
    return (entries.clamp(max=clip) if clip > 0 else entries).sum(-1)


def relative_positions(mask: torch.Tensor) -> torch.Tensor:
    """u = (i - 0.5) / T for the i-th valid token (1-based) of each row of [B, M]; 0 elsewhere."""
    valid = mask.float()
    index = valid.cumsum(-1) * valid
    total = valid.sum(-1, keepdim=True).clamp_min(1.0)
    return (index - 0.5).clamp_min(0.0) / total * valid


def position_weights(mask: torch.Tensor, schedule: PositionSchedule) -> torch.Tensor:
    """w_t = w_min + (1 - w_min) sigmoid((u_t - tau) / s) at valid tokens of [B, M], 0 elsewhere."""
    if not 0.0 <= schedule.w_min <= 1.0 or schedule.s <= 0:
        raise ValueError(f"position schedule needs 0 <= w_min <= 1 and s > 0, found {schedule}")
    u = relative_positions(mask)
    w = schedule.w_min + (1.0 - schedule.w_min) * torch.sigmoid((u - schedule.tau) / schedule.s)
    return w * mask.float()


def per_sequence_token_weights(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """c_t with sum_t c_t l_t = mean over sequences with a valid token of (sum_t w_t l_t / T_row)."""
    valid = mask.float()
    count = valid.sum(-1, keepdim=True)
    sequences = (count > 0).sum().clamp_min(1)
    return weights.float() * valid / count.clamp_min(1.0) / sequences


def pwopsd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    schedule: PositionSchedule,
    tau: float = 1.1,
    clip: float = 0.05,
    compat: str = "released",
) -> torch.Tensor:
    """PW-OPSD over [B, M, V] logits and a [B, M] mask (the unchunked form)."""
    token = opsd_token_loss(student_logits, teacher_logits, tau, clip, compat)
    weights = per_sequence_token_weights(position_weights(mask, schedule), mask)
    return (weights * token * mask.float()).sum()


def token_mean(token_losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the valid tokens' losses / their number (0 when none)."""
    valid = mask.float()
    return (token_losses * valid).sum() / valid.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- EOPD


def eopd_fkl_token_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    tau: float = 1.1,
    threshold: float = EOPD_ENTROPY_THRESHOLD,
    top_k: int = EOPD_TOP_K,
) -> torch.Tensor:
    """1[H_T > threshold] KL(teacher renormalised on its top k || student's full-vocab p) per token."""
    log_s, log_t = log_probs(student_logits, teacher_logits, tau)
    with torch.no_grad():
        entropy = -(log_t.exp() * log_t).sum(-1)
        top_logits, top_index = (teacher_logits.detach().float() / tau).topk(top_k, dim=-1)
        log_top = F.log_softmax(top_logits, dim=-1)
    fkl = (log_top.exp() * (log_top - log_s.gather(-1, top_index))).sum(-1)
    return (entropy > threshold).float() * fkl


def eopd_sampled_token_loss(
    logp_student: torch.Tensor, logp_teacher: torch.Tensor, eps: float = EOPD_PPO_EPS
) -> torch.Tensor:
    """max(-r A, -clip(r, 1 - eps, 1 + eps) A) per token, A = log p_T - sg(log p_S), r = exp(log p_S - sg(.))."""
    advantage = logp_teacher.detach().float() - logp_student.detach().float()
    ratio = torch.exp(logp_student.float() - logp_student.detach().float())
    return torch.maximum(-ratio * advantage, -ratio.clamp(1.0 - eps, 1.0 + eps) * advantage)


def eopd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    tau: float = 1.1,
) -> torch.Tensor:
    """EOPD over [B, M, V] logits, [B, M] sampled tokens and mask (the unchunked form)."""
    log_s, log_t = log_probs(student_logits, teacher_logits, tau)
    index = targets.clamp_min(0).unsqueeze(-1)
    sampled = eopd_sampled_token_loss(log_s.gather(-1, index).squeeze(-1), log_t.gather(-1, index).squeeze(-1))
    return token_mean(sampled + eopd_fkl_token_loss(student_logits, teacher_logits, tau), mask)


# ----------------------------------------------------------------------------- REOPOLD


def reopold_floor(lam: float) -> float:
    """The mixture-clip reward floor log(lambda) / (1 - lambda)."""
    if not 0.0 < lam < 1.0:
        raise ValueError(f"reopold lambda must lie in (0, 1), found {lam}")
    return math.log(lam) / (1.0 - lam)


def reopold_phase_mask(
    reward: torch.Tensor,
    entropy: torch.Tensor,
    mask: torch.Tensor,
    step: int,
    lam: float = REOPOLD_LAMBDA,
    beta: float = REOPOLD_BETA,
    t_switch: int = REOPOLD_T_SWITCH,
) -> torch.Tensor:
    """M_t over [B, M]: phase I (0-based step < t_switch) keeps tokens whose reward is >= the floor;
    phase II keeps tokens whose student entropy is >= the (1 - beta) quantile of the valid tokens'."""
    valid = mask.bool()
    if step < t_switch:
        return valid & (reward.detach() >= reopold_floor(lam))
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"reopold beta must lie in (0, 1], found {beta}")
    if not valid.any():
        return valid
    cut = torch.quantile(entropy.detach()[valid].float(), 1.0 - beta)
    return valid & (entropy.detach() >= cut)


def reopold_loss(
    logp_student: torch.Tensor, logp_teacher: torch.Tensor, keep: torch.Tensor, lam: float = REOPOLD_LAMBDA
) -> torch.Tensor:
    """-(1 / sum M) sum_t M_t max(R_t, floor) log p_S(y_t) over [B, M] tensors (M = keep)."""
    reward = (logp_teacher.detach().float() - logp_student.detach().float()).clamp(min=reopold_floor(lam))
    keep = keep.float()
    return -(reward * keep * logp_student.float()).sum() / keep.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- one batch (kd-train)
# The same objectives from hidden states and output heads, the logits built a chunk of tokens at a
# time (motab.losses.divergences), so no [tokens, |V|] tensor is ever whole. The golden tests run
# selfdistill_loss with identity heads on the release's fixed logits.

SELF_DISTILL_LOSSES = ("opsd", "eopd", "pwopsd", "reopold")


@dataclass(frozen=True)
class SelfDistillSettings:
    """The knobs of the four losses (defaults: the PW-OPSD launchers')."""

    loss: str
    tau: float = 1.1  # distillation temperature (the release's --temperature)
    clip: float = 0.05  # opsd/pwopsd (the release's --jsd_token_clip)
    compat: str = "released"
    schedule: PositionSchedule = PW_PRESETS["moderate"]
    reopold_lambda: float = REOPOLD_LAMBDA
    reopold_beta: float = REOPOLD_BETA
    reopold_t_switch: int = REOPOLD_T_SWITCH
    chunk_tokens: int = 1024


def _opsd_loss(
    student_hidden: torch.Tensor,
    student_head: Head,
    teacher_hidden: torch.Tensor,
    teacher_head: Head,
    valid: torch.Tensor,
    s: SelfDistillSettings,
) -> torch.Tensor:
    """opsd (the mean over valid tokens) or pwopsd (position-weighted): the clipped token loss, chunked."""
    weights = None  # the mean over valid tokens
    if s.loss == "pwopsd":
        weights = per_sequence_token_weights(position_weights(valid, s.schedule), valid)

    def clipped(sl: torch.Tensor, tl: torch.Tensor) -> torch.Tensor:
        return opsd_token_loss(sl, tl, s.tau, s.clip, s.compat)

    return chunked_token_loss(
        student_hidden,
        student_head,
        teacher_hidden,
        valid,
        clipped,
        teacher_head=teacher_head,
        weights=weights,
        chunk_tokens=s.chunk_tokens,
    )


def _eopd_loss(
    student_hidden: torch.Tensor,
    student_head: Head,
    teacher_hidden: torch.Tensor,
    teacher_head: Head,
    valid: torch.Tensor,
    logp_s: torch.Tensor,
    logp_t: torch.Tensor,
    s: SelfDistillSettings,
) -> torch.Tensor:
    """eopd: the sampled-token term (mean over valid tokens) plus the entropy-gated forward KL, chunked."""
    count = max(int(valid.sum()), 1)

    def gated_fkl(sl: torch.Tensor, tl: torch.Tensor) -> torch.Tensor:
        return eopd_fkl_token_loss(sl, tl, s.tau)

    sampled = eopd_sampled_token_loss(logp_s, logp_t).sum() / count
    return sampled + chunked_token_loss(
        student_hidden,
        student_head,
        teacher_hidden,
        valid,
        gated_fkl,
        teacher_head=teacher_head,
        chunk_tokens=s.chunk_tokens,
    )


def _reopold_batch_loss(
    student_hidden: torch.Tensor,
    student_head: Head,
    valid: torch.Tensor,
    logp_s: torch.Tensor,
    logp_t: torch.Tensor,
    s: SelfDistillSettings,
    step: int,
) -> torch.Tensor:
    """reopold on the [B, M] grid: the phase mask (phase II by the student's entropy), then the loss."""
    tau, chunk = s.tau, s.chunk_tokens
    grid = torch.zeros(valid.shape, dtype=torch.float32, device=valid.device)
    logp_s_grid = grid.masked_scatter(valid, logp_s)
    logp_t_grid = grid.masked_scatter(valid, logp_t)
    entropy = grid
    if step >= s.reopold_t_switch:  # phase II ranks the tokens by the student's entropy at tau
        with torch.no_grad():
            entropy = grid.masked_scatter(
                valid, chunked_token_entropy(student_hidden.detach()[valid], student_head, tau=tau, chunk_tokens=chunk)
            )
    keep = reopold_phase_mask(
        logp_t_grid - logp_s_grid.detach(), entropy, valid, step, s.reopold_lambda, s.reopold_beta, s.reopold_t_switch
    )
    return reopold_loss(logp_s_grid, logp_t_grid, keep, s.reopold_lambda)


def selfdistill_loss(
    student_hidden: torch.Tensor,
    student_head: Head,
    teacher_hidden: torch.Tensor,
    teacher_head: Head,
    response: torch.Tensor,
    mask: torch.Tensor,
    settings: SelfDistillSettings,
    step: int = 0,
) -> torch.Tensor:
    """The loss of one batch: hidden states [B, M, d] predicting the response tokens [B, M] (mask [B, M]).

    step: the 0-based optimizer step (REOPOLD's phase; the release reads Trainer.state.global_step).
    """
    s, tau, chunk = settings, settings.tau, settings.chunk_tokens
    valid = mask.bool()
    targets = response[valid]
    if s.loss in ("opsd", "pwopsd"):
        return _opsd_loss(student_hidden, student_head, teacher_hidden, teacher_head, valid, s)
    if s.loss not in SELF_DISTILL_LOSSES:
        raise ValueError(f"self-distillation loss must be one of {SELF_DISTILL_LOSSES}, found {s.loss!r}")
    logp_s = chunked_token_logprobs(student_hidden[valid], student_head, targets, tau=tau, chunk_tokens=chunk)
    with torch.no_grad():
        logp_t = chunked_token_logprobs(
            teacher_hidden[valid].detach(), teacher_head, targets, tau=tau, chunk_tokens=chunk
        )
    if s.loss == "eopd":
        return _eopd_loss(student_hidden, student_head, teacher_hidden, teacher_head, valid, logp_s, logp_t, s)
    return _reopold_batch_loss(student_hidden, student_head, valid, logp_s, logp_t, s, step)
