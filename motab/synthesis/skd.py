"""SKD synthesis (Xu et al. 2024), block form: the student drafts, the teacher verifies and repairs.

Loop: the student samples a block of up to block_size tokens; the teacher scores the block in one
prefill with its top logprobs; the first token the teacher rejects (motab.synthesis.acceptance:
nucleus of mass gamma, or top-K) and everything after it are discarded, and the rejected token
is replaced by ONE TEACHER SAMPLE: a 1-token teacher generate at that position (an exact sample
from p_T at `temperature`, including tokens outside the returned top logprobs; it costs one extra
request per rejection). Drafting resumes after the replacement. Ends at EOS, at max_new_tokens,
or when the context window is full.

Stats: student_tokens = drafted tokens kept, teacher_tokens = replacements; accepted_steps =
blocks kept whole, rejected_steps = blocks cut by a rejection (= teacher_tokens).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from motab.synthesis.acceptance import RULES, first_rejection
from motab.synthesis.context import (
    SynthContext,
    generate_ids,
    request_seed,
    score_continuation,
)
from motab.synthesis.motab_method import decode_output


@dataclass(frozen=True)
class SkdParams:
    seed: int
    gamma: float = 0.9
    rule: str = "nucleus"
    top_k: int = 25
    block_size: int = 16
    temperature: float = 0.6
    max_new_tokens: int = 32768
    num_responses: int = 5
    batch_problems: int = 16
    verify_top_n: int = 64   # top logprobs asked of the teacher under rule "nucleus" (should cover gamma)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule: expected one of {RULES}, found {self.rule!r}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], found {self.gamma}")
        if min(self.top_k, self.block_size, self.max_new_tokens, self.verify_top_n) < 1:
            raise ValueError("top_k, block_size, max_new_tokens and verify_top_n must be at least 1")

    @property
    def top_logprobs_num(self) -> int:
        return self.top_k if self.rule == "topk" else self.verify_top_n


async def skd_trajectory(ctx: SynthContext, prompt_ids: list[int], problem_id: str, sample: int,
                         params: SkdParams) -> tuple[list[int], dict]:
    student = ctx.require_student("skd")
    generated: list[int] = []
    stats = {"teacher_tokens": 0, "student_tokens": 0, "accepted_steps": 0, "rejected_steps": 0,
             "finish": "length"}
    block = 0
    while len(generated) < params.max_new_tokens:
        want = min(params.block_size, params.max_new_tokens - len(generated))
        context = prompt_ids + generated
        draft = await generate_ids(student, context, want, params.temperature,
                                   request_seed(params.seed, problem_id, sample, block, "student"))
        if not draft.ids:
            stats["finish"] = "context"
            break
        _logprobs, tops = await score_continuation(ctx.teacher, context, draft.ids, params.top_logprobs_num)
        reject = first_rejection(draft.ids, tops, params.rule, params.gamma, params.top_k)
        if reject is None:
            generated += draft.ids
            stats["student_tokens"] += len(draft.ids)
            stats["accepted_steps"] += 1
            last = draft
        else:
            generated += draft.ids[:reject]
            stats["student_tokens"] += reject
            last = await generate_ids(ctx.teacher, prompt_ids + generated, 1, params.temperature,
                                      request_seed(params.seed, problem_id, sample, block, "teacher"))
            generated += last.ids
            stats["teacher_tokens"] += len(last.ids)
            stats["rejected_steps"] += 1
        block += 1
        if last.hit_eos:
            stats["finish"] = "eos"
            break
        if not last.ids or (reject is None and last.finish.get("type") == "length" and len(last.ids) < want):
            stats["finish"] = "context"
            break
    stats["total_tokens"] = len(generated)
    return generated, stats


async def synthesize_chunk(ctx: SynthContext, problems: list[dict], prompts: list[str],
                           params: SkdParams) -> list[dict]:
    """num_responses SKD trajectories per problem; all of the chunk's trajectories run concurrently."""
    jobs = []
    for problem, prompt in zip(problems, prompts):
        prompt_ids = ctx.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for sample in range(params.num_responses):
            jobs.append((problem, sample, skd_trajectory(ctx, prompt_ids, problem["id"], sample, params)))
    results = await asyncio.gather(*(job for _p, _s, job in jobs))
    return [{"id": problem["id"], "sample": sample, "input": problem["input"],
             "output": decode_output(ctx.tokenizer, ids, stats["finish"] == "eos"), "stats": stats}
            for (problem, sample, _job), (ids, stats) in zip(jobs, results)]
