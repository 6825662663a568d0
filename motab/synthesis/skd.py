"""SKD baseline, as the MOTAB release's 2-generate-baseline.py (gamma 0.9): the MOTAB study's SKD row.

Per trajectory, from the context s = the question, step by step (stop ".\\n\\n"):
  the student writes a step; the teacher scores it; keep the student's step iff
      teacher geometric-mean prob of the step > gamma x the student's own geometric-mean prob
  (and the scoring call succeeded); otherwise the teacher writes that step from s (its own text;
  if that fails or comes back empty, the student's step stands, still counted as the teacher's).
  s += step + "\\n\\n"; the budget counts the kept steps' tokens; stop at max_total_tokens, or
  when the kept step did not finish with type "stop". The row is the steps joined by "\\n\\n".

The script prefetches the student's next step while the teacher scores; that changes timing,
never the rows, so it is not reproduced. Xu et al.'s token-level top-K SKD is `skd_tokens`.
`compat` (motab.synthesis.steps) chooses the released code's behaviour or the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from motab.synthesis.context import SynthContext, request_seed
from motab.synthesis.steps import (
    STEP_JOIN,
    STEP_STOP,
    Compat,
    generate_steps,
    geo_mean_prob,
    lockstep_rows,
    score_steps,
    student_drafts,
)


@dataclass(frozen=True)
class SkdParams:
    seed: int
    gamma: float = 0.9
    num_responses: int = 5
    temperature: float = 0.6
    max_step_tokens: int = 8192
    max_total_tokens: int = 32768
    compat: str = "released"
    batch_problems: int = 16

    def __post_init__(self):
        Compat(self.compat)
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0, found {self.gamma}")
        if self.max_step_tokens < 1 or self.max_total_tokens < 1:
            raise ValueError("max_step_tokens and max_total_tokens must be at least 1")

    @property
    def chat_prompts(self) -> bool:
        """The step loop builds its own starting context (steps.py), never the chat prompt."""
        return False


@dataclass
class _Trajectory:
    problem_id: str
    sample: int
    context: str
    steps: list[dict] = field(default_factory=list)  # text, source, tokens, finish, probs
    total_tokens: int = 0
    done: bool = False


def _judge_drafts(live: list[tuple], scores: list, gamma: float) -> tuple[dict, list]:
    """({live index: (draft, "student", probs)} for the drafts the teacher accepts, [(live index,
    probs)] for those the teacher rewrites): keep iff the teacher's geometric-mean prob of the step
    > gamma x the student's own (and the scoring call succeeded)."""
    kept, rewrite = {}, []
    for k, ((_, draft), logprobs) in enumerate(zip(live, scores)):
        student_p = geo_mean_prob(draft.logprobs)
        teacher_p = None if logprobs is None else geo_mean_prob(logprobs)
        probs = {
            "student_avg_prob": round(student_p, 8),
            "teacher_avg_prob": None if teacher_p is None else round(teacher_p, 8),
        }
        if teacher_p is not None and teacher_p > gamma * student_p:
            kept[k] = (draft, "student", probs)
        else:
            rewrite.append((k, probs))
    return kept, rewrite


async def _teacher_rewrites(
    ctx: SynthContext, live: list[tuple], rewrite: list, kept: dict, params: SkdParams, compat
) -> None:
    """The teacher writes each rejected step from the same context, into `kept`; if that fails or
    comes back empty, the student's step stands (still counted as the teacher's)."""
    steps = await generate_steps(
        ctx.teacher,
        [live[k][0].context for k, _ in rewrite],
        [params.max_step_tokens] * len(rewrite),
        params.temperature,
        [
            request_seed(params.seed, live[k][0].problem_id, live[k][0].sample, len(live[k][0].steps), "teacher")
            for k, _ in rewrite
        ],
        STEP_STOP,
        compat,
    )
    for (k, probs), step in zip(rewrite, steps):
        kept[k] = (step if step.success and step.text else live[k][1], "teacher", probs)


def _append_kept(live: list[tuple], kept: dict, compat) -> None:
    """Append each trajectory's kept step, extend its context and budget, and end it when the step
    did not finish with type "stop" (or, in paper mode, hit EOS)."""
    for k, (t, _draft) in enumerate(live):
        step, source, probs = kept[k]
        t.steps.append(
            {
                "text": step.text,
                "source": source,
                "tokens": step.tokens,
                "finish": step.finish_type,
                "eos": step.hit_eos,
            }
            | probs
        )
        t.context = t.context + step.text + STEP_JOIN
        t.total_tokens += step.tokens
        if step.finish_type != "stop" or (step.hit_eos and not compat.released):
            t.done = True


async def skd_lockstep(ctx: SynthContext, trajectories: list[_Trajectory], params: SkdParams) -> None:
    """Advance the chunk's trajectories in lockstep rounds until each is done (see the module doc)."""
    compat = Compat(params.compat)
    student = ctx.require_student("skd")
    while True:
        for t in trajectories:
            t.done = t.done or t.total_tokens >= params.max_total_tokens
        active = [t for t in trajectories if not t.done]
        if not active:
            break
        live = await student_drafts(student, active, params, compat)
        scores = await score_steps(
            ctx.teacher, ctx.tokenizer, [t.context for t, _ in live], [d.text for _, d in live], compat
        )
        kept, rewrite = _judge_drafts(live, scores, params.gamma)
        if rewrite:
            await _teacher_rewrites(ctx, live, rewrite, kept, params, compat)
        _append_kept(live, kept, compat)


def steps_row(t, teacher_only: bool = False) -> tuple[str, dict]:
    """The row's text (the script's `response`) and its stats, for SKD and teacher-only."""
    by = {"student": 0, "teacher": 0}
    steps_by = {"student": 0, "teacher": 0}
    for s in t.steps:
        by[s["source"]] += s["tokens"]
        steps_by[s["source"]] += 1
    stats = {
        "teacher_tokens": by["teacher"],
        "student_tokens": by["student"],
        "accepted_steps": 0 if teacher_only else steps_by["student"],
        "rejected_steps": 0 if teacher_only else steps_by["teacher"],
        "total_steps": len(t.steps),
        "step_source": [s["source"] for s in t.steps],
        "step_finish": [s["finish"] for s in t.steps],
        "step_eos": [s["eos"] for s in t.steps],
    }
    return STEP_JOIN.join(s["text"] for s in t.steps), stats


async def synthesize_chunk(
    ctx: SynthContext, problems: list[dict], prompts: list[str], params: SkdParams
) -> list[dict]:
    """num_responses SKD trajectories per problem (raw question in released mode, chat prompt in
    paper mode; `prompts` is not used)."""
    return await lockstep_rows(ctx, problems, params, _Trajectory, skd_lockstep, steps_row)
