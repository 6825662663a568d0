"""What a synthesis method's chunk function works with: the servers, the tokenizer, and the two
token-level requests the draft-and-verify methods are made of (draft, score).

Everything travels as token ids: the student's draft is scored by the teacher and appended to the
trajectory exactly as generated, never decoded and re-encoded (which could split differently).
Teacher and student must therefore share one vocabulary (run.py checks it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from motab.serving.client import ServerClient, input_logprobs, input_top_logprobs


@dataclass
class SynthContext:
    teacher: ServerClient
    student: ServerClient | None
    tokenizer: Any

    def require_student(self, method: str) -> ServerClient:
        if self.student is None:
            raise ValueError(f"method {method!r} needs a student server (--student or --student-url)")
        return self.student


def request_seed(seed: int, problem_id: str, sample: int, step: int, role: str) -> int:
    """Sampling seed of one request of one trajectory: fixed by config and position, never by timing."""
    digest = hashlib.sha256(f"{seed}:{problem_id}:{sample}:{step}:{role}".encode()).hexdigest()
    return int(digest[:8], 16)


@dataclass(frozen=True)
class Generated:
    ids: list[int]
    finish: dict          # the server's finish_reason: {"type": "stop"|"length", "matched"|"length": ...}

    @property
    def hit_eos(self) -> bool:
        """Stopped on a stop *token* (EOS): the trajectory is over."""
        matched = self.finish.get("matched")
        return self.finish.get("type") == "stop" and isinstance(matched, int) and not isinstance(matched, bool)


async def generate_ids(client: ServerClient, context_ids: list[int], max_new_tokens: int, temperature: float,
                       seed: int, stop: str | None = None) -> Generated:
    """Sample a continuation of context_ids; `ids` keeps every generated token (stop string and EOS too)."""
    sampling: dict[str, Any] = {"temperature": temperature, "max_new_tokens": max_new_tokens, "sampling_seed": seed}
    if stop:
        sampling["stop"] = stop
    resp = await client.generate({"input_ids": context_ids, "sampling_params": sampling})
    return Generated(ids=[int(t) for t in resp.get("output_ids") or []],
                     finish=(resp.get("meta_info") or {}).get("finish_reason") or {})


async def score_continuation(client: ServerClient, context_ids: list[int], draft_ids: list[int],
                             top_k: int) -> tuple[list[float], list[dict[int, float]]]:
    """Teacher logprob of each drafted token and its top-k distribution there, in one prefill.

    SGLang's input logprobs start at logprob_start_len and the first entry is always None, so the
    request starts one position before the draft and that entry is dropped.
    """
    if not draft_ids:
        raise ValueError("score_continuation: nothing to score (empty draft)")
    resp = await client.generate({
        "input_ids": context_ids + draft_ids,
        "sampling_params": {"max_new_tokens": 0, "temperature": 0.0},
        "return_logprob": True,
        "top_logprobs_num": top_k,
        "logprob_start_len": len(context_ids) - 1,
    })
    logprobs = input_logprobs(resp)[1:]
    tops = input_top_logprobs(resp)[1:]
    scored_ids = [int(entry[1]) for entry in resp["meta_info"]["input_token_logprobs"][1:]]
    if scored_ids != list(draft_ids) or len(tops) != len(draft_ids) or any(lp is None for lp in logprobs):
        raise ValueError(f"teacher scoring misaligned: sent {len(draft_ids)} draft tokens "
                         f"{list(draft_ids)[:8]}..., got logprobs for {scored_ids[:8]}... "
                         f"({len(logprobs)} logprobs, {len(tops)} top-k lists)")
    return [float(lp) for lp in logprobs], [top or {} for top in tops]
