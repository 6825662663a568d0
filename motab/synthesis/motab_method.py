"""MOTAB synthesis, as the release's 1-generate-ours.py (wangbing1416/MOTAB).

Per trajectory, from the context s = the question:
  1. the student writes one step (stop ".\\n\\n", up to max_step_tokens);
  2. the teacher scores it: V_T = exp(mean log p_T(step tokens | s)) (geometric mean);
  3. boundary eps(s) = epsilon0 * exp(-theta * H), H = entropy of the teacher's renormalised top-k
     next-token distribution at s (computed when s was reached);
  4. V_T >= eps: accept, s += step + "\\n\\n"; stop when the student tokens reach max_total_tokens
     or the step did not finish with type "stop";
     V_T < eps (a breach): t* = argmin over k of V_T[k] - V_T[k-1] among k whose previous step was
     above its boundary (else the step with the smallest V_T); the teacher writes the whole rest
     (no stop string, max(256, min(max_total - student tokens before t*, max_total)) tokens) from
     the context before step t*, and the row is
         "\\n\\n".join(all student steps) + "\\n\\n" + "However," + "\\n\\n" + teacher continuation.
  No breach: the row is the student's steps joined by "\\n\\n".

`compat` (motab.synthesis.steps) chooses between the released code's behaviour and the paper's.
A chunk's trajectories advance in lockstep rounds, one batched request per role per round; each
row's sampling seed comes from (seed, problem id, sample, step, role).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from motab.synthesis.context import SynthContext, request_seed
from motab.synthesis.steps import (
    STEP_JOIN,
    Compat,
    generate_steps,
    geo_mean_prob,
    lockstep_rows,
    score_steps,
    student_drafts,
    teacher_entropies,
)

REVISE_TOKEN = "However,"  # the script's transition between the student's steps and the teacher's rest
MIN_TEACHER_TOKENS = 256  # the script's floor on the teacher continuation's budget


@dataclass(frozen=True)
class MotabParams:
    seed: int
    epsilon0: float = 0.2
    theta: float = 1.0
    top_k_entropy: int = 20
    num_responses: int = 5
    temperature: float = 0.6
    max_step_tokens: int = 8192
    max_total_tokens: int = 32768
    compat: str = "released"
    batch_problems: int = 16

    def __post_init__(self):
        Compat(self.compat)
        if self.epsilon0 < 0 or self.theta < 0:
            raise ValueError(f"epsilon0 and theta must be >= 0, found {self.epsilon0}, {self.theta}")
        if self.top_k_entropy < 1 or self.max_step_tokens < 1 or self.max_total_tokens < 1:
            raise ValueError("top_k_entropy, max_step_tokens and max_total_tokens must be at least 1")

    @property
    def chat_prompts(self) -> bool:
        """The step loop builds its own starting context (steps.py), never the chat prompt."""
        return False


def find_bifurcation(oracle: list[float], boundary: list[float]) -> int:
    """t* (0-based) by TD-error backtracking, as the script's find_bifurcation_node."""
    n = len(oracle)
    if n <= 1:
        return 0
    candidates = [(k, oracle[k] - oracle[k - 1]) for k in range(1, n) if oracle[k - 1] >= boundary[k - 1]]
    if candidates:
        return min(candidates, key=lambda c: c[1])[0]  # first k on ties, as min() does
    return min(range(n), key=lambda i: oracle[i])


@dataclass
class _Trajectory:
    problem_id: str
    sample: int
    context: str
    entropy: float = 0.0
    steps: list[dict] = field(default_factory=list)  # text, tokens, finish, context_before, oracle, boundary
    total_tokens: int = 0
    done: bool = False
    breach: bool = False
    bifurcation: int | None = None
    correction: str | None = None
    correction_tokens: int = 0


async def _set_entropies(ctx: SynthContext, trajectories: list[_Trajectory], params: MotabParams, compat) -> None:
    """Each trajectory's teacher top-k entropy at its current context (one batched request)."""
    contexts = [t.context for t in trajectories]
    for t, h in zip(trajectories, await teacher_entropies(ctx.teacher, contexts, params.top_k_entropy, compat)):
        t.entropy = h


def _record_step(t: _Trajectory, draft, oracle: float, boundary: float) -> None:
    """Append the student's step with its teacher value and boundary, and count its tokens."""
    t.steps.append(
        {
            "text": draft.text,
            "tokens": draft.tokens,
            "finish": draft.finish_type,
            "eos": draft.hit_eos,
            "context_before": t.context,
            "oracle": round(oracle, 8),
            "boundary": round(boundary, 8),
            "entropy": round(t.entropy, 8),
        }
    )
    t.total_tokens += draft.tokens


async def _judge_drafts(ctx: SynthContext, live: list[tuple], params: MotabParams, compat) -> tuple[list, list]:
    """Score each draft with the teacher against its boundary: (breached, continuing) trajectories.
    A breach fixes t*; an accepted step extends the context, and the trajectory continues unless
    its budget is spent or the step ended it."""
    scores = await score_steps(
        ctx.teacher, ctx.tokenizer, [t.context for t, _ in live], [d.text for _, d in live], compat
    )
    breached, continuing = [], []
    for (t, draft), logprobs in zip(live, scores):
        oracle = 1.0 if logprobs is None else geo_mean_prob(logprobs)  # a failed call counts as accept
        boundary = params.epsilon0 * math.exp(-params.theta * t.entropy)
        _record_step(t, draft, oracle, boundary)
        if oracle < boundary:
            t.breach, t.done = True, True
            t.bifurcation = find_bifurcation([s["oracle"] for s in t.steps], [s["boundary"] for s in t.steps])
            breached.append(t)
            continue
        t.context = t.context + draft.text + STEP_JOIN
        ended = draft.finish_type != "stop" or (draft.hit_eos and not compat.released)
        if t.total_tokens >= params.max_total_tokens or ended:
            t.done = True
        else:
            continuing.append(t)
    return breached, continuing


async def _teacher_corrections(ctx: SynthContext, breached: list[_Trajectory], params: MotabParams, compat) -> None:
    """The teacher writes the rest of each breached trajectory from the context before t*."""
    wants = []
    for t in breached:
        safe = sum(s["tokens"] for s in t.steps[: t.bifurcation])
        wants.append(max(MIN_TEACHER_TOKENS, min(params.max_total_tokens - safe, params.max_total_tokens)))
    rests = await generate_steps(
        ctx.teacher,
        [t.steps[t.bifurcation]["context_before"] for t in breached],
        wants,
        params.temperature,
        [request_seed(params.seed, t.problem_id, t.sample, len(t.steps), "teacher") for t in breached],
        None,
        compat,
    )
    for t, rest in zip(breached, rests):
        if rest.success and rest.text:
            t.correction, t.correction_tokens = rest.text, rest.tokens
        else:  # the script's fallback: the student's own steps from t* on
            t.correction = STEP_JOIN.join(s["text"] for s in t.steps[t.bifurcation :])


async def motab_lockstep(ctx: SynthContext, trajectories: list[_Trajectory], params: MotabParams) -> None:
    """Advance the chunk's trajectories in lockstep rounds until each is done (see the module doc)."""
    compat = Compat(params.compat)
    student = ctx.require_student("motab")
    await _set_entropies(ctx, trajectories, params, compat)
    while True:
        active = [t for t in trajectories if not t.done and t.total_tokens < params.max_total_tokens]
        for t in trajectories:
            t.done = t.done or t.total_tokens >= params.max_total_tokens
        if not active:
            break
        live = await student_drafts(student, active, params, compat)
        breached, continuing = await _judge_drafts(ctx, live, params, compat)
        if breached:
            await _teacher_corrections(ctx, breached, params, compat)
        await _set_entropies(ctx, continuing, params, compat)


def trajectory_row(t: _Trajectory) -> tuple[str, dict]:
    """The row's text (the script's sft_text) and its stats."""
    student_text = STEP_JOIN.join(s["text"] for s in t.steps)
    if t.breach and t.correction is not None:
        text = student_text + STEP_JOIN + REVISE_TOKEN + STEP_JOIN + t.correction
    else:
        text = student_text
    stats = {
        "teacher_tokens": t.correction_tokens,
        "student_tokens": t.total_tokens,
        "accepted_steps": len(t.steps) - int(t.breach),
        "rejected_steps": int(t.breach),
        "breach": t.breach,
        "bifurcation_step": t.bifurcation,
        "step_oracle": [s["oracle"] for s in t.steps],
        "step_boundary": [s["boundary"] for s in t.steps],
        "step_finish": [s["finish"] for s in t.steps],
        "step_eos": [s["eos"] for s in t.steps],
    }
    return text, stats


async def synthesize_chunk(
    ctx: SynthContext, problems: list[dict], prompts: list[str], params: MotabParams
) -> list[dict]:
    """num_responses MOTAB trajectories per problem (the prompt is the question itself in released
    mode, the chat prompt in paper mode; `prompts` is not used)."""
    return await lockstep_rows(ctx, problems, params, _Trajectory, motab_lockstep, trajectory_row)
