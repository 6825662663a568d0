"""MOTAB synthesis: step-wise, entropy-gated mixing of student drafts and teacher steps.

For each step the student drafts up to max_step_tokens, stopping at the step boundary (a blank
line by default); the teacher scores the draft in one prefill (log p_T of each drafted token and
its top-k there); the step is accepted if d <= eps (motab.synthesis.acceptance.motab_accept),
otherwise the teacher generates that step itself from the same context. The trajectory ends at a
final answer (a complete \\boxed{...} outside an open <think> block), at EOS, at max_total_tokens,
or when the model's context window is full.

Each request carries its own seed from (seed, problem id, sample, step, role), so a trajectory
does not depend on what else runs concurrently.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from motab.evaluation.answers import last_boxed
from motab.synthesis.acceptance import motab_accept
from motab.synthesis.context import (
    SynthContext,
    generate_ids,
    request_seed,
    score_continuation,
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


def decode_output(tokenizer, ids: list[int], ended_on_eos: bool) -> str:
    """The row's text, as the server's `text` would be: the closing EOS and special tokens left out."""
    return tokenizer.decode(ids[:-1] if ended_on_eos else ids, skip_special_tokens=True)


async def motab_trajectory(ctx: SynthContext, prompt: str, prompt_ids: list[int], problem_id: str, sample: int,
                           params: MotabParams) -> tuple[list[int], dict]:
    """One trajectory's token ids and its stats."""
    student = ctx.require_student("motab")
    generated: list[int] = []
    stats = {"teacher_tokens": 0, "student_tokens": 0, "accepted_steps": 0, "rejected_steps": 0,
             "finish": "length", "step_d": [], "step_eps": []}
    step = 0
    while len(generated) < params.max_total_tokens:
        want = min(params.max_step_tokens, params.max_total_tokens - len(generated))
        context = prompt_ids + generated
        draft = await generate_ids(student, context, want, params.temperature,
                                   request_seed(params.seed, problem_id, sample, step, "student"),
                                   params.step_boundary)
        if not draft.ids:
            stats["finish"] = "context"
            break
        logprobs, tops = await score_continuation(ctx.teacher, context, draft.ids, params.top_k_entropy)
        accepted, d, eps, _hbar = motab_accept(logprobs, tops, params.epsilon0, params.theta,
                                               params.top_k_entropy)
        stats["step_d"].append(round(d, 6))
        stats["step_eps"].append(round(eps, 6))
        if accepted:
            chosen = draft
            stats["student_tokens"] += len(draft.ids)
            stats["accepted_steps"] += 1
        else:
            chosen = await generate_ids(ctx.teacher, context, want, params.temperature,
                                        request_seed(params.seed, problem_id, sample, step, "teacher"),
                                        params.step_boundary)
            stats["teacher_tokens"] += len(chosen.ids)
            stats["rejected_steps"] += 1
        generated += chosen.ids
        step += 1
        if chosen.hit_eos:
            stats["finish"] = "eos"
            break
        if not chosen.ids or (chosen.finish.get("type") == "length" and len(chosen.ids) < want):
            stats["finish"] = "context"  # the server stopped short: the context window is full
            break
        if answer_reached(prompt, ctx.tokenizer.decode(generated, skip_special_tokens=False)):
            stats["finish"] = "answer"
            break
    stats["total_tokens"] = len(generated)
    return generated, stats


async def synthesize_chunk(ctx: SynthContext, problems: list[dict], prompts: list[str],
                           params: MotabParams) -> list[dict]:
    """num_responses MOTAB trajectories per problem; all of the chunk's trajectories run concurrently."""
    jobs = []
    for problem, prompt in zip(problems, prompts):
        prompt_ids = ctx.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for sample in range(params.num_responses):
            jobs.append((problem, sample, motab_trajectory(ctx, prompt, prompt_ids, problem["id"], sample, params)))
    results = await asyncio.gather(*(job for _p, _s, job in jobs))
    rows = []
    for (problem, sample, _job), (ids, stats) in zip(jobs, results):
        rows.append({"id": problem["id"], "sample": sample, "input": problem["input"],
                     "output": decode_output(ctx.tokenizer, ids, stats["finish"] == "eos"), "stats": stats})
    return rows
