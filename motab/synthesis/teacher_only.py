"""Teacher-only synthesis, two procedures:

- `stepwise: true` (the MOTAB release's 3-generate-teacher-only.py, the motab and toy studies): the
  teacher writes step by step (stop ".\\n\\n", up to max_step_tokens each), the context growing by
  step + "\\n\\n", until its tokens reach max_total_tokens or a step does not finish with type
  "stop"; the row is the steps joined by "\\n\\n". `compat` as for MOTAB (motab.synthesis.steps).
- `stepwise: false`: one generation of up to max_new_tokens from the chat prompt (the CoT-filter
  seed's teacher-cot.py regeneration).
"""

from __future__ import annotations

from dataclasses import dataclass

from motab.serving.client import completion_tokens
from motab.synthesis.context import SynthContext, request_seed
from motab.synthesis.skd import _Trajectory, steps_row
from motab.synthesis.steps import (
    STEP_JOIN,
    STEP_STOP,
    Compat,
    generate_steps,
    lockstep_rows,
)


@dataclass(frozen=True)
class TeacherOnlyParams:
    num_responses: int
    temperature: float
    seed: int
    max_new_tokens: int = 32768  # stepwise: false
    stepwise: bool = False
    max_step_tokens: int = 8192  # stepwise: true
    max_total_tokens: int = 32768  # stepwise: true
    compat: str = "released"
    batch_problems: int = 16

    def __post_init__(self):
        Compat(self.compat)
        if min(self.max_new_tokens, self.max_step_tokens, self.max_total_tokens, self.num_responses) < 1:
            raise ValueError("max_new_tokens, max_step_tokens, max_total_tokens and num_responses must be >= 1")

    @property
    def chat_prompts(self) -> bool:
        """One generation continues the chat prompt; the step loop builds its own context."""
        return not self.stepwise


async def stepwise_lockstep(ctx: SynthContext, trajectories: list[_Trajectory], params: TeacherOnlyParams) -> None:
    compat = Compat(params.compat)
    while True:
        for t in trajectories:
            t.done = t.done or t.total_tokens >= params.max_total_tokens
        active = [t for t in trajectories if not t.done]
        if not active:
            break
        steps = await generate_steps(
            ctx.teacher,
            [t.context for t in active],
            [params.max_step_tokens] * len(active),
            params.temperature,
            [request_seed(params.seed, t.problem_id, t.sample, len(t.steps), "teacher") for t in active],
            STEP_STOP,
            compat,
        )
        for t, step in zip(active, steps):
            if not step.success or not step.text:
                t.done = True
                continue
            t.steps.append(
                {
                    "text": step.text,
                    "source": "teacher",
                    "tokens": step.tokens,
                    "finish": step.finish_type,
                    "eos": step.hit_eos,
                }
            )
            t.context = t.context + step.text + STEP_JOIN
            t.total_tokens += step.tokens
            if step.finish_type != "stop" or (step.hit_eos and not compat.released):
                t.done = True


async def synthesize_chunk(
    ctx: SynthContext, problems: list[dict], prompts: list[str], params: TeacherOnlyParams
) -> list[dict]:
    """Trajectories for one chunk of problems; each row's seed comes from (seed, problem id,
    sample), so a trajectory does not depend on which problems share its chunk."""
    if params.stepwise:
        return await lockstep_rows(
            ctx, problems, params, _Trajectory, stepwise_lockstep, lambda t: steps_row(t, teacher_only=True)
        )
    texts = [prompt for prompt in prompts for _ in range(params.num_responses)]
    samplings = [
        {
            "temperature": params.temperature,
            "max_new_tokens": params.max_new_tokens,
            "sampling_seed": request_seed(params.seed, problem["id"], sample, 0, "teacher"),
        }
        for problem in problems
        for sample in range(params.num_responses)
    ]
    responses = await ctx.teacher.generate({"text": texts, "sampling_params": samplings})
    rows = []
    for index, response in enumerate(responses):
        problem = problems[index // params.num_responses]
        tokens = completion_tokens(response)
        rows.append(
            {
                "id": problem["id"],
                "sample": index % params.num_responses,
                "input": problem["input"],
                "output": response["text"],
                "stats": {"teacher_tokens": tokens, "student_tokens": 0, "accepted_steps": 0, "rejected_steps": 0},
            }
        )
    return rows
