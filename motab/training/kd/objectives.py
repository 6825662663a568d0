"""KD objectives: a registry `name -> Loss(params, units, fn)` (the `loss` key of a kd block).

Each loss is a function of one batch (`Batch`: the student's and teacher's hidden states at the
response positions, their output heads, the response mask, both models' log-probabilities of the
sampled tokens at temperature 1) and of its own frozen params dataclass, whose fields are kd-block
keys of the same names (validated when the config is read; `__post_init__` raises `FieldError`).
`units` says what the loss averages over ("tokens", or "sequences" for PW-OPSD): micro-batches and
teachers are weighted by their share of those units, so the step's loss is the whole batch's.

This module imports no torch at load time (the Snakefile's config check reads the registry); the
loss functions import their tensor code when called. To add a loss: write its function and
`register` it here (docs/extending.md, "A KD loss").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from motab.errors import UserError
from motab.losses.selfdistill_defaults import (
    COMPATS,
    PW_PRESETS,
    REOPOLD_BETA,
    REOPOLD_LAMBDA,
    REOPOLD_T_SWITCH,
    PositionSchedule,
)

UNITS = ("tokens", "sequences")


class FieldError(UserError):
    """A bad value of one config field; `field` names it (the config reader adds where it was read)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def check(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise FieldError(field_name, message)


def knob(default: Any, help: str, choices: tuple | None = None) -> Any:
    """A config field with its default, help (the kd-train flag's) and allowed values."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Batch:
    """One batch of rollouts as every loss sees it (R rows, M response positions, N = mask.sum())."""

    student_hidden: Any  # [R, M, d] student hidden states predicting each response token (with grad)
    student_head: Any  # the student's output head (lm_head)
    teacher_hidden: Any  # [R, M, d] teacher hidden states (no grad; after its privileged prompt if any); None
    teacher_head: Any  # when the teacher is behind a server (teacher_server: sampled_tokens_only losses)
    response: Any  # [R, M] sampled token ids
    mask: Any  # [R, M] bool: the response tokens in the loss
    targets: Any  # [N] response[mask]
    logp_student: Any  # [N] log p_S(y_t) at temperature 1, no grad
    logp_teacher: Any  # [N] log p_T(y_t) at temperature 1
    temperature: float  # the rollouts' sampling temperature
    chunk_tokens: int  # tokens per chunk of logits
    step: int  # 1-based optimizer step


@dataclass(frozen=True)
class Loss:
    """A registered objective: its params dataclass, what it averages over, and its function."""

    params: type  # frozen dataclass; every field has a default
    units: str  # one of UNITS
    fn: Callable[[Batch, Any], Any]  # (batch, params) -> scalar loss tensor with grad
    full_sampling: bool = False  # needs untruncated sampling (top_p 1, top_k 0)
    # needs of the teacher only log p_T of each sampled token (Batch.logp_teacher), which an inference
    # server returns (SGLang /generate return_logprob); the others read its full distribution
    sampled_tokens_only: bool = False


LOSSES: dict[str, Loss] = {}


def register(name: str, loss: Loss) -> Loss:
    """Add a loss under `name` (a kd block's `loss`); names are unique."""
    if name in LOSSES:
        raise ValueError(f"KD loss {name!r} is registered twice")
    if loss.units not in UNITS:
        raise ValueError(f"KD loss {name!r}: units must be one of {UNITS}, found {loss.units!r}")
    LOSSES[name] = loss
    return loss


def loss_units(name: str, mask) -> int:
    """What loss `name` averages over in one batch (mask [R, M]): its tokens, or its sequences with one."""
    if LOSSES[name].units == "sequences":
        return int((mask.sum(-1) > 0).sum())
    return int(mask.sum())


# ----------------------------------------------------------------------------- Tinker's on-policy loss


@dataclass(frozen=True)
class OnPolicyParams:
    kl_discount: float = knob(0.0, "rkl_onpolicy: discount g of future k_t (0 = none)")


def rkl_onpolicy(b: Batch, p: OnPolicyParams):
    """Tinker: the sampler's log-probs (this student at the sampling temperature, no gradient) give
    k_t; the learner's forward pass is at temperature 1 and the importance ratio p_new / p_sampler
    carries the gradient (exactly 1 at temperature 1)."""
    import torch

    from motab.losses.divergences import chunked_token_logprobs
    from motab.losses.onpolicy import onpolicy_advantage_loss

    grid = torch.zeros(b.mask.shape, dtype=torch.float32, device=b.mask.device)
    if b.temperature == 1.0:
        logp_sampler = b.logp_student
    else:
        with torch.no_grad():
            logp_sampler = chunked_token_logprobs(
                b.student_hidden.detach()[b.mask],
                b.student_head,
                b.targets,
                tau=b.temperature,
                chunk_tokens=b.chunk_tokens,
            )
    logp_new = chunked_token_logprobs(b.student_hidden[b.mask], b.student_head, b.targets, chunk_tokens=b.chunk_tokens)
    return onpolicy_advantage_loss(
        grid.masked_scatter(b.mask, logp_new),
        grid.masked_scatter(b.mask, logp_sampler),
        grid.masked_scatter(b.mask, b.logp_teacher),
        b.mask,
        p.kl_discount,
    )


# ----------------------------------------------------------------------------- full-vocabulary divergences


@dataclass(frozen=True)
class DivergenceParams:
    distill_temperature: float = knob(1.0, "divergence losses and the PW-OPSD family: logits / tau")
    jsd_beta: float = knob(0.5, "jsd: teacher weight in the mixture (0 = fkl, 1 = rkl)")
    skew_lambda: float = knob(0.1, "skl/srkl: weight of p_T (skl) or p_S (srkl) in the mix")
    akl_mu: float = knob(0.5, "akl: teacher mass of the head")

    def __post_init__(self):
        check(self.distill_temperature > 0, "distill_temperature", "must be > 0")
        check(0 <= self.jsd_beta <= 1, "jsd_beta", "must lie in [0, 1]")
        check(0 <= self.skew_lambda < 1, "skew_lambda", "must lie in [0, 1)")
        check(0 < self.akl_mu <= 1, "akl_mu", "must lie in (0, 1]")


def divergence(kind: str) -> Callable[[Batch, DivergenceParams], Any]:
    """The full-vocabulary divergence `kind` (motab.losses.divergences) at each response position, mean
    over tokens, computed in token chunks."""

    def loss(b: Batch, p: DivergenceParams):
        from motab.losses.divergences import chunked_token_divergence

        return chunked_token_divergence(
            b.student_hidden,
            b.student_head,
            b.teacher_hidden,
            b.mask,
            kind,
            teacher_head=b.teacher_head,
            tau=p.distill_temperature,
            beta=p.jsd_beta,
            skew=p.skew_lambda,
            mu=p.akl_mu,
            chunk_tokens=b.chunk_tokens,
        )

    return loss


# ----------------------------------------------------------------------------- the PW-OPSD release's family


@dataclass(frozen=True)
class SelfDistillParams:
    distill_temperature: float = knob(1.0, "divergence losses and the PW-OPSD family: logits / tau")
    clip: float = knob(0.05, "opsd/pwopsd: forward-KL clip")
    compat: str = knob(
        "released", "opsd/pwopsd clip: released (each vocabulary entry) or paper (each token's KL)", COMPATS
    )
    w_min: float = knob(PW_PRESETS["moderate"].w_min, "pwopsd: weight floor")
    pw_tau: float = knob(PW_PRESETS["moderate"].tau, "pwopsd: sigmoid centre in u = t/T")
    pw_s: float = knob(PW_PRESETS["moderate"].s, "pwopsd: sigmoid width")
    reopold_lambda: float = knob(REOPOLD_LAMBDA, "reopold: reward floor log(lambda) / (1 - lambda)")
    reopold_beta: float = knob(REOPOLD_BETA, "reopold phase II: the highest-student-entropy fraction of tokens")
    reopold_t_switch: int = knob(REOPOLD_T_SWITCH, "reopold: steps of phase I before phase II (entropy mask)")

    def __post_init__(self):
        check(self.distill_temperature > 0, "distill_temperature", "must be > 0")
        check(self.clip > 0, "clip", "must be > 0")
        check(0 <= self.w_min <= 1, "w_min", "must lie in [0, 1]")
        check(self.pw_s > 0, "pw_s", "must be > 0")
        check(0 < self.reopold_lambda < 1, "reopold_lambda", "must lie in (0, 1)")
        check(0 < self.reopold_beta <= 1, "reopold_beta", "must lie in (0, 1]")


def selfdistill(name: str) -> Callable[[Batch, SelfDistillParams], Any]:
    """The PW-OPSD release's objective `name` (motab.losses.selfdistill; METHODS.md, "Self-distillation
    losses"); REOPOLD's phase reads the 0-based step, as the release's global_step."""

    def loss(b: Batch, p: SelfDistillParams):
        from motab.losses.selfdistill import SelfDistillSettings, selfdistill_loss

        settings = SelfDistillSettings(
            loss=name,
            tau=p.distill_temperature,
            clip=p.clip,
            compat=p.compat,
            schedule=PositionSchedule(w_min=p.w_min, tau=p.pw_tau, s=p.pw_s),
            reopold_lambda=p.reopold_lambda,
            reopold_beta=p.reopold_beta,
            reopold_t_switch=p.reopold_t_switch,
            chunk_tokens=b.chunk_tokens,
        )
        return selfdistill_loss(
            b.student_hidden, b.student_head, b.teacher_hidden, b.teacher_head, b.response, b.mask, settings, b.step - 1
        )

    return loss


register("rkl_onpolicy", Loss(OnPolicyParams, "tokens", rkl_onpolicy, full_sampling=True, sampled_tokens_only=True))
for _kind in ("rkl", "fkl", "jsd", "skl", "srkl", "akl"):
    register(_kind, Loss(DivergenceParams, "tokens", divergence(_kind)))
for _name in ("opsd", "eopd", "pwopsd", "reopold"):
    register(_name, Loss(SelfDistillParams, "sequences" if _name == "pwopsd" else "tokens", selfdistill(_name)))
