"""Teacher-only synthesis: NUM_RESPONSES sampled trajectories per problem from the teacher."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from motab.serving.client import ServerClient, completion_tokens


@dataclass(frozen=True)
class TeacherOnlyParams:
    num_responses: int
    temperature: float
    max_new_tokens: int
    seed: int
    batch_problems: int = 16


def chunk_seed(seed: int, first_id: str) -> int:
    """Sampling seed of a request: fixed by config and content, never by timing."""
    digest = hashlib.sha256(f"{seed}:{first_id}".encode()).hexdigest()
    return int(digest[:8], 16)


async def synthesize_chunk(client: ServerClient, problems: list[dict], prompts: list[str],
                           params: TeacherOnlyParams) -> list[dict]:
    """Trajectories for one chunk of problems (each repeated num_responses times in one request)."""
    texts = [prompt for prompt in prompts for _ in range(params.num_responses)]
    responses = await client.generate({
        "text": texts,
        "sampling_params": {"temperature": params.temperature, "max_new_tokens": params.max_new_tokens,
                            "sampling_seed": chunk_seed(params.seed, problems[0]["id"])},
    })
    rows = []
    for index, response in enumerate(responses):
        problem = problems[index // params.num_responses]
        tokens = completion_tokens(response)
        rows.append({"id": problem["id"], "sample": index % params.num_responses, "input": problem["input"],
                     "output": response["text"],
                     "stats": {"teacher_tokens": tokens, "student_tokens": 0,
                               "accepted_steps": 0, "rejected_steps": 0}})
    return rows
