"""One batch's self-distillation loss from hidden states and output heads (kd-train's loss path).

The same objectives as `motab.losses.selfdistill` (the PW-OPSD release's), with the logits built a
chunk of tokens at a time (`motab.losses.divergences`), so no [tokens, |V|] tensor is ever whole.
The golden tests run this function with identity heads on the release's fixed logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from motab.losses.divergences import (
    Head,
    chunked_token_entropy,
    chunked_token_logprobs,
    chunked_token_loss,
)
from motab.losses.selfdistill import (
    PW_PRESETS,
    REOPOLD_BETA,
    REOPOLD_LAMBDA,
    REOPOLD_T_SWITCH,
    PositionSchedule,
    eopd_fkl_token_loss,
    eopd_sampled_token_loss,
    opsd_token_loss,
    per_sequence_token_weights,
    position_weights,
    reopold_loss,
    reopold_phase_mask,
)

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
