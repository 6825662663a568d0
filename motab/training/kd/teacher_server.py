"""A KD teacher behind its inference server (teacher_server: true).

Tinker's on-policy distillation asks its teacher's sampling service for the log-probability of each
token of prompt + sampled response (compute_logprobs) and uses those of the response. The same
request to SGLang (or the embedded server, which speaks its protocol) is a `/generate` with the
sequence as `input_ids`, `max_new_tokens` 0, `return_logprob` and `logprob_start_len` at the last
prompt token: `meta_info.input_token_logprobs` then ends with one (logprob, token id) per response
token. Only losses that read nothing else of the teacher may use it (Loss.sampled_tokens_only).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from motab.serving.client import ServerClient
from motab.serving.launch import serving
from motab.serving.placement import from_json, visible_devices

SCORE_TIMEOUT_S = 3600.0  # one request scores a whole micro-batch of long rollouts


@dataclass(frozen=True)
class ServerTeacher:
    """The teacher `model` (its checkpoint folder or hub id) served at `url`."""

    url: str
    model: str


def scoring_payload(rollouts) -> tuple[dict, list[int]]:
    """(the /generate body scoring every row with a response, those rows): each row's unpadded prompt
    and its response tokens (response_mask) as input_ids, nothing generated."""
    sequences, starts, rows = [], [], []
    for r in range(rollouts.response.shape[0]):
        response = rollouts.response[r][rollouts.response_mask[r]].tolist()
        if not response:
            continue
        prompt_mask = rollouts.attention_mask[r, : rollouts.prompt_len].bool()
        prompt = rollouts.input_ids[r, : rollouts.prompt_len][prompt_mask].tolist()
        sequences.append(prompt + response)
        starts.append(len(prompt) - 1)
        rows.append(r)
    payload = {
        "input_ids": sequences,
        "sampling_params": {"max_new_tokens": 0, "temperature": 1.0},
        "return_logprob": True,
        "logprob_start_len": starts,
    }
    return payload, rows


def response_logprobs(answer: dict, response: list[int], where: str) -> list[float]:
    """log p_T of each response token: the last len(response) entries of input_token_logprobs, whose
    token ids must be the response's (else the server scored another sequence)."""
    entries = (answer.get("meta_info") or {}).get("input_token_logprobs") or []
    tail = entries[-len(response) :] if len(entries) >= len(response) else []
    if [int(e[1]) for e in tail] != response or any(e[0] is None for e in tail):
        raise ValueError(f"{where}: the server's input_token_logprobs do not cover the {len(response)} response tokens")
    return [float(e[0]) for e in tail]


async def _generate(url: str, payload: dict):
    async with ServerClient(url, max_in_flight=1, timeout_s=SCORE_TIMEOUT_S) as client:
        return await client.generate(payload)


def teacher_token_logprobs(teacher: ServerTeacher, rollouts) -> torch.Tensor:
    """[N] float32 log p_T(y_t) at temperature 1 of the response tokens in response_mask order (the
    in-process teacher's logp_teacher), on the rollouts' device."""
    payload, rows = scoring_payload(rollouts)
    values: list[float] = []
    if rows:
        answers = asyncio.run(_generate(teacher.url, payload))
        answers = answers if isinstance(answers, list) else [answers]
        if len(answers) != len(rows):
            raise ValueError(f"{teacher.url}/generate: {len(answers)} answers for {len(rows)} sequences")
        for answer, r in zip(answers, rows):
            response = rollouts.response[r][rollouts.response_mask[r]].tolist()
            values += response_logprobs(answer, response, f"{teacher.url} ({teacher.model}), row {r}")
    return torch.tensor(values, dtype=torch.float32, device=rollouts.response.device)


@contextmanager
def started_teacher(
    teacher: str, command: str, log: str, placement_json: str | None, timeout_s: float
) -> Iterator[str]:
    """Start the teacher's server on its GPUs of the job (placement role "teacher", motab.serving.
    placement) for the block, and hide those GPUs from the training processes (role "trainer")."""
    placements = from_json(placement_json)
    with serving(command, teacher, log, startup_timeout_s=timeout_s, placement=placements.get("teacher")) as url:
        trainer = placements.get("trainer")
        if trainer is not None:
            devices = visible_devices(trainer, os.environ.get("CUDA_VISIBLE_DEVICES"))
            if devices is not None:  # before CUDA starts in this process: it then sees only these
                os.environ["CUDA_VISIBLE_DEVICES"] = devices
        yield url
