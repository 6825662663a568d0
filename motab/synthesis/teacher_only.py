"""Teacher-only synthesis: NUM_RESPONSES sampled trajectories per problem from the teacher."""

from __future__ import annotations

from dataclasses import dataclass

from motab.serving.client import ServerClient, completion_tokens
from motab.synthesis.context import request_seed


@dataclass(frozen=True)
class TeacherOnlyParams:
    num_responses: int
    temperature: float
    max_new_tokens: int
    seed: int
    batch_problems: int = 16


async def synthesize_chunk(client: ServerClient, problems: list[dict], prompts: list[str],
                           params: TeacherOnlyParams) -> list[dict]:
    """Trajectories for one chunk of problems (each repeated num_responses times in one request).

    Each row carries its own seed from (seed, problem id, sample), so a trajectory does not depend
    on which problems share its chunk (batch_problems)."""
    texts = [prompt for prompt in prompts for _ in range(params.num_responses)]
    samplings = [{"temperature": params.temperature, "max_new_tokens": params.max_new_tokens,
                  "sampling_seed": request_seed(params.seed, problem["id"], sample, 0, "teacher")}
                 for problem in problems for sample in range(params.num_responses)]
    responses = await client.generate({"text": texts, "sampling_params": samplings})
    rows = []
    for index, response in enumerate(responses):
        problem = problems[index // params.num_responses]
        tokens = completion_tokens(response)
        rows.append({"id": problem["id"], "sample": index % params.num_responses, "input": problem["input"],
                     "output": response["text"],
                     "stats": {"teacher_tokens": tokens, "student_tokens": 0,
                               "accepted_steps": 0, "rejected_steps": 0}})
    return rows
