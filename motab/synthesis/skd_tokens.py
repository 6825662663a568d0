"""Token-level SKD (Xu et al. 2024, arXiv 2410.11325), block form: a named variant (method
`skd_tokens`); the MOTAB study's SKD row is the release's step-level baseline (skd.py).

Loop: the student samples a block of up to block_size tokens; the teacher scores the block in one
prefill with its top logprobs; the first token outside the teacher's top-K
(first_rejection) and everything after it are discarded, and the rejected token
is replaced by ONE TEACHER SAMPLE: a 1-token teacher generate at that position (an exact sample
from p_T at `temperature`, including tokens outside the returned top logprobs; it costs one extra
request per rejection). Drafting resumes after the replacement. Ends at EOS, at max_new_tokens,
or when the context window is full.

A chunk's trajectories advance in lockstep rounds, one batched request per role per round; each
row's draws depend only on its own seed and context (see motab.synthesis.motab_method).

Stats: student_tokens = drafted tokens kept, teacher_tokens = replacements; accepted_steps =
blocks kept whole, rejected_steps = blocks cut by a rejection (= teacher_tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from motab.synthesis.context import (
    SynthContext,
    draft_and_score,
    generate_ids_batch,
    lockstep_rows,
    request_seed,
    unfinished,
)


@dataclass(frozen=True)
class SkdTokensParams:
    seed: int
    top_k: int = 25
    block_size: int = 16
    temperature: float = 0.6
    max_new_tokens: int = 32768
    num_responses: int = 5
    batch_problems: int = 16

    def __post_init__(self):
        if min(self.top_k, self.block_size, self.max_new_tokens) < 1:
            raise ValueError("top_k, block_size and max_new_tokens must be at least 1")

    @property
    def chat_prompts(self) -> bool:
        """Token-level drafting continues the chat prompt's token ids."""
        return True


# --- the acceptance rule, a pure function of the teacher's top logprobs as the server returns them
# (per position a dict {token_id: logprob}, motab.serving.client.input_top_logprobs): the student's
# token y_t is kept iff it is among the teacher's top-K tokens at t. (The step-level rules of the
# MOTAB release, MOTAB's entropy boundary and its SKD baseline's gamma test, live with their
# methods: motab_method.py and skd.py.)


def _ranked(top: dict[int, float]) -> list[tuple[int, float]]:
    """(token_id, logprob) from most to least likely; ties broken by token id, so ranks are stable."""
    return sorted(top.items(), key=lambda item: (-item[1], item[0]))


def topk_keep(token_id: int, teacher_top: dict[int, float], top_k: int) -> bool:
    """Whether the teacher keeps the student's token: it is among the teacher's top_k tokens."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, found {top_k}")
    return token_id in {tid for tid, _lp in _ranked(teacher_top)[:top_k]}


def first_rejection(draft_ids: Sequence[int], teacher_tops: Sequence[dict[int, float]], top_k: int) -> int | None:
    """Index of the first drafted token the teacher rejects, or None when it keeps the whole block."""
    if len(draft_ids) != len(teacher_tops):
        raise ValueError(
            f"first_rejection: {len(draft_ids)} drafted tokens but {len(teacher_tops)} teacher distributions"
        )
    for index, (token_id, top) in enumerate(zip(draft_ids, teacher_tops)):
        if not topk_keep(token_id, top, top_k):
            return index
    return None


@dataclass
class _Trajectory:
    prompt_ids: list[int]
    problem_id: str
    sample: int
    generated: list[int] = field(default_factory=list)
    block: int = 0
    done: bool = False
    stats: dict = field(
        default_factory=lambda: {
            "teacher_tokens": 0,
            "student_tokens": 0,
            "accepted_steps": 0,
            "rejected_steps": 0,
            "finish": "length",
        }
    )


async def skd_lockstep(ctx: SynthContext, trajectories: list[_Trajectory], params: SkdTokensParams) -> None:
    """Run trajectories to their end in rounds: per round one batched student block, teacher
    verification (one request per group of nearby context lengths) and one batched 1-token teacher
    generate for the rejected rows. Each row keeps its own seed from (seed, id, sample, block, role)."""
    student = ctx.require_student("skd_tokens")
    while True:
        active = unfinished(trajectories, params.max_new_tokens)
        if not active:
            break
        wants = [min(params.block_size, params.max_new_tokens - len(t.generated)) for t in active]
        seeds = [request_seed(params.seed, t.problem_id, t.sample, t.block, "student") for t in active]
        _contexts, drafts, live, scores = await draft_and_score(
            ctx, student, active, wants, params.temperature, seeds, params.top_k
        )
        if not live:
            continue
        last: dict[int, object] = {}
        rejects: dict[int, int] = {}
        for k, (_logprobs, tops) in zip(live, scores):
            t, draft = active[k], drafts[k]
            reject = first_rejection(draft.ids, tops, params.top_k)
            if reject is None:
                t.generated += draft.ids
                t.stats["student_tokens"] += len(draft.ids)
                t.stats["accepted_steps"] += 1
                last[k] = draft
            else:
                t.generated += draft.ids[:reject]
                t.stats["student_tokens"] += reject
                rejects[k] = reject
        if rejects:
            repairs = await generate_ids_batch(
                ctx.teacher,
                [active[k].prompt_ids + active[k].generated for k in rejects],
                [1] * len(rejects),
                params.temperature,
                [
                    request_seed(params.seed, active[k].problem_id, active[k].sample, active[k].block, "teacher")
                    for k in rejects
                ],
            )
            for k, repair in zip(rejects, repairs):
                t = active[k]
                t.generated += repair.ids
                t.stats["teacher_tokens"] += len(repair.ids)
                t.stats["rejected_steps"] += 1
                last[k] = repair
        for k in live:
            t, step_last = active[k], last[k]
            t.block += 1
            if step_last.hit_eos:
                t.stats["finish"] = "eos"
                t.done = True
            elif not step_last.ids or (
                k not in rejects and step_last.finish.get("type") == "length" and len(step_last.ids) < wants[k]
            ):
                t.stats["finish"] = "context"
                t.done = True
    for t in trajectories:
        t.stats["total_tokens"] = len(t.generated)


async def skd_trajectory(
    ctx: SynthContext, prompt_ids: list[int], problem_id: str, sample: int, params: SkdTokensParams
) -> tuple[list[int], dict]:
    """One trajectory's token ids and its stats (a lockstep run of one row)."""
    t = _Trajectory(list(prompt_ids), problem_id, sample)
    await skd_lockstep(ctx, [t], params)
    return t.generated, t.stats


async def synthesize_chunk(
    ctx: SynthContext, problems: list[dict], prompts: list[str], params: SkdTokensParams
) -> list[dict]:
    """num_responses SKD trajectories per problem; the chunk's trajectories advance in lockstep
    rounds, one batched request per role per round."""
    return await lockstep_rows(
        ctx,
        problems,
        prompts,
        params.num_responses,
        lambda _prompt, ids, problem_id, sample: _Trajectory(ids, problem_id, sample),
        lambda rows: skd_lockstep(ctx, rows, params),
    )
