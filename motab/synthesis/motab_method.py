"""MOTAB synthesis: step-wise, entropy-gated mixing of student drafts and teacher steps.

For each step the student drafts up to max_step_tokens, stopping at the step boundary (a blank
line by default); the teacher scores the draft in one prefill (log p_T of each drafted token and
its top-k there); the step is accepted if d <= eps (motab.synthesis.acceptance.motab_accept),
otherwise the teacher generates that step itself from the same context. The trajectory ends at a
final answer (a complete \\boxed{...} outside an open <think> block), at EOS, at max_total_tokens,
or when the model's context window is full.

A chunk's trajectories advance in lockstep rounds: one batched request per role per round (the
embedded server runs one request at a time, so per-trajectory requests would be serialized).
Each row carries its own seed from (seed, problem id, sample, step, role), and the server derives
a row's generator from that seed and the row's own prompt, never from its position in the
request, so a trajectory's tokens do not depend on which others share its chunk (batch_problems).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from motab.evaluation.answers import last_boxed
from motab.synthesis.acceptance import motab_accept
from motab.synthesis.context import (
    SynthContext,
    draft_and_score,
    generate_ids_batch,
    lockstep_rows,
    request_seed,
    unfinished,
)


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
    step_boundary: str = "\n\n"
    batch_problems: int = 16

    def __post_init__(self):
        if self.epsilon0 < 0 or self.theta < 0:
            raise ValueError(f"epsilon0 and theta must be >= 0, found {self.epsilon0}, {self.theta}")
        if self.top_k_entropy < 1 or self.max_step_tokens < 1 or self.max_total_tokens < 1:
            raise ValueError("top_k_entropy, max_step_tokens and max_total_tokens must be at least 1")


def answer_reached(prompt: str, output: str) -> bool:
    """A complete \\boxed{...} in the output, not inside a still-open <think> block."""
    text = prompt + output
    if text.rfind("<think>") > text.rfind("</think>"):
        return False
    tail = output[output.rfind("</think>") + len("</think>"):] if "</think>" in output else output
    return last_boxed(tail) is not None


@dataclass
class _Trajectory:
    prompt: str
    prompt_ids: list[int]
    problem_id: str
    sample: int
    generated: list[int] = field(default_factory=list)
    step: int = 0
    done: bool = False
    stats: dict = field(default_factory=lambda: {
        "teacher_tokens": 0, "student_tokens": 0, "accepted_steps": 0, "rejected_steps": 0,
        "finish": "length", "step_d": [], "step_eps": []})


async def motab_lockstep(ctx: SynthContext, trajectories: list[_Trajectory], params: MotabParams) -> None:
    """Run trajectories to their end in rounds: per round one batched student draft, teacher
    scoring (one request per group of nearby context lengths) and one batched teacher regeneration
    for the rejected rows. Each row keeps its own seed from (seed, problem id, sample, step, role)."""
    student = ctx.require_student("motab")
    while True:
        active = unfinished(trajectories, params.max_total_tokens)
        if not active:
            break
        wants = [min(params.max_step_tokens, params.max_total_tokens - len(t.generated)) for t in active]
        seeds = [request_seed(params.seed, t.problem_id, t.sample, t.step, "student") for t in active]
        contexts, drafts, live, scores = await draft_and_score(ctx, student, active, wants, params.temperature,
                                                               seeds, params.top_k_entropy, params.step_boundary)
        if not live:
            continue
        chosen: dict[int, object] = {}
        rejected = []
        for k, (logprobs, tops) in zip(live, scores):
            t = active[k]
            accepted, d, eps, _hbar = motab_accept(logprobs, tops, params.epsilon0, params.theta,
                                                   params.top_k_entropy)
            t.stats["step_d"].append(round(d, 6))
            t.stats["step_eps"].append(round(eps, 6))
            if accepted:
                chosen[k] = drafts[k]
            else:
                rejected.append(k)
        if rejected:
            teacher_steps = await generate_ids_batch(
                ctx.teacher, [contexts[k] for k in rejected], [wants[k] for k in rejected], params.temperature,
                [request_seed(params.seed, active[k].problem_id, active[k].sample, active[k].step, "teacher")
                 for k in rejected],
                params.step_boundary)
            chosen.update(zip(rejected, teacher_steps))
        for k in live:
            t, step_ids = active[k], chosen[k]
            if k in rejected:
                t.stats["teacher_tokens"] += len(step_ids.ids)
                t.stats["rejected_steps"] += 1
            else:
                t.stats["student_tokens"] += len(step_ids.ids)
                t.stats["accepted_steps"] += 1
            t.generated += step_ids.ids
            t.step += 1
            if step_ids.hit_eos:
                t.stats["finish"] = "eos"
                t.done = True
            elif not step_ids.ids or (step_ids.finish.get("type") == "length" and len(step_ids.ids) < wants[k]):
                t.stats["finish"] = "context"  # the server stopped short: the context window is full
                t.done = True
            elif answer_reached(t.prompt, ctx.tokenizer.decode(t.generated, skip_special_tokens=False)):
                t.stats["finish"] = "answer"
                t.done = True
    for t in trajectories:
        t.stats["total_tokens"] = len(t.generated)


async def motab_trajectory(ctx: SynthContext, prompt: str, prompt_ids: list[int], problem_id: str, sample: int,
                           params: MotabParams) -> tuple[list[int], dict]:
    """One trajectory's token ids and its stats (a lockstep run of one row)."""
    t = _Trajectory(prompt, list(prompt_ids), problem_id, sample)
    await motab_lockstep(ctx, [t], params)
    return t.generated, t.stats


async def synthesize_chunk(ctx: SynthContext, problems: list[dict], prompts: list[str],
                           params: MotabParams) -> list[dict]:
    """num_responses MOTAB trajectories per problem; the chunk's trajectories advance in lockstep
    rounds, one batched request per role per round."""
    return await lockstep_rows(ctx, problems, prompts, params.num_responses, _Trajectory,
                               lambda rows: motab_lockstep(ctx, rows, params))
