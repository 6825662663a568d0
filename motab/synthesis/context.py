"""What a synthesis method's chunk function works with: the servers, the tokenizer, and the two
token-level requests the draft-and-verify methods are made of (draft, score).

Everything travels as token ids: the student's draft is scored by the teacher and appended to the
trajectory exactly as generated, never decoded and re-encoded (which could split differently).
Teacher and student must therefore share one vocabulary (run.py checks it).
"""

from __future__ import annotations

import asyncio
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
    finish: dict  # the server's finish_reason: {"type": "stop"|"length", "matched"|"length": ...}

    @property
    def hit_eos(self) -> bool:
        """Stopped on a stop *token* (EOS): the trajectory is over."""
        matched = self.finish.get("matched")
        return self.finish.get("type") == "stop" and isinstance(matched, int) and not isinstance(matched, bool)


async def generate_ids(
    client: ServerClient,
    context_ids: list[int],
    max_new_tokens: int,
    temperature: float,
    seed: int,
    stop: str | None = None,
) -> Generated:
    """Sample a continuation of context_ids; `ids` keeps every generated token (stop string and EOS too)."""
    sampling: dict[str, Any] = {"temperature": temperature, "max_new_tokens": max_new_tokens, "sampling_seed": seed}
    if stop:
        sampling["stop"] = stop
    resp = await client.generate({"input_ids": context_ids, "sampling_params": sampling})
    return Generated(
        ids=[int(t) for t in resp.get("output_ids") or []],
        finish=(resp.get("meta_info") or {}).get("finish_reason") or {},
    )


async def score_continuation(
    client: ServerClient, context_ids: list[int], draft_ids: list[int], top_k: int
) -> tuple[list[float], list[dict[int, float]]]:
    """Teacher logprob of each drafted token and its top-k distribution there, in one prefill.

    SGLang's input logprobs start at logprob_start_len and the first entry is always None, so the
    request starts one position before the draft and that entry is dropped.
    """
    if not draft_ids:
        raise ValueError("score_continuation: nothing to score (empty draft)")
    resp = await client.generate(
        {
            "input_ids": context_ids + draft_ids,
            "sampling_params": {"max_new_tokens": 0, "temperature": 0.0},
            "return_logprob": True,
            "top_logprobs_num": top_k,
            "logprob_start_len": len(context_ids) - 1,
        }
    )
    logprobs = input_logprobs(resp)[1:]
    tops = input_top_logprobs(resp)[1:]
    scored_ids = [int(entry[1]) for entry in resp["meta_info"]["input_token_logprobs"][1:]]
    if scored_ids != list(draft_ids) or len(tops) != len(draft_ids) or any(lp is None for lp in logprobs):
        raise ValueError(
            f"teacher scoring misaligned: sent {len(draft_ids)} draft tokens "
            f"{list(draft_ids)[:8]}..., got logprobs for {scored_ids[:8]}... "
            f"({len(logprobs)} logprobs, {len(tops)} top-k lists)"
        )
    return [float(lp) for lp in logprobs], [top or {} for top in tops]


# ----------------------------------------------------------------------------- batched requests
#
# The lockstep methods send one request per role per round for all their active trajectories.
# `sampling_params` may be a list (one entry per row), so every row keeps its own seed and length.
# `logprob_start_len` is one number per request (our server, unlike SGLang, takes no per-row list),
# so scoring rows are grouped by context length (see score_continuations).


async def generate_ids_batch(
    client: ServerClient,
    contexts: list[list[int]],
    max_new_tokens: list[int],
    temperature: float,
    seeds: list[int],
    stop: str | None = None,
) -> list[Generated]:
    """generate_ids for many rows in ONE request (row i: contexts[i], max_new_tokens[i], seeds[i])."""
    if not contexts:
        return []
    if not len(contexts) == len(max_new_tokens) == len(seeds):
        raise ValueError("generate_ids_batch: contexts, max_new_tokens and seeds differ in length")
    samplings = []
    for want, seed in zip(max_new_tokens, seeds):
        sampling: dict[str, Any] = {"temperature": temperature, "max_new_tokens": want, "sampling_seed": seed}
        if stop:
            sampling["stop"] = stop
        samplings.append(sampling)
    resp = await client.generate({"input_ids": [list(c) for c in contexts], "sampling_params": samplings})
    if not isinstance(resp, list) or len(resp) != len(contexts):
        raise ValueError(
            f"batched generate: sent {len(contexts)} rows, got "
            f"{len(resp) if isinstance(resp, list) else type(resp).__name__}"
        )
    return [
        Generated(
            ids=[int(t) for t in r.get("output_ids") or []],
            finish=(r.get("meta_info") or {}).get("finish_reason") or {},
        )
        for r in resp
    ]


# Rows whose scoring start lies within this many tokens of their group's smallest start share one
# request; the extra prompt positions cost a top-k each on the server and are dropped here.
SCORE_START_SPAN = 64


def _score_groups(starts: list[int], span: int) -> list[list[int]]:
    order = sorted(range(len(starts)), key=lambda i: (starts[i], i))
    groups: list[list[int]] = []
    for i in order:
        if groups and starts[i] - starts[groups[-1][0]] <= span:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


async def score_continuations(
    client: ServerClient, contexts: list[list[int]], drafts: list[list[int]], top_k: int, span: int = SCORE_START_SPAN
) -> list[tuple[list[float], list[dict[int, float]]]]:
    """score_continuation for many rows: one request per group of rows with nearby context lengths.

    A group is scored from its smallest start (len(context) - 1); each row drops the entries before
    its own start and the first one at it (SGLang's None), so the result equals the one-row request.
    """
    if len(contexts) != len(drafts):
        raise ValueError("score_continuations: contexts and drafts differ in length")
    if any(not d for d in drafts):
        raise ValueError("score_continuations: nothing to score (empty draft)")
    starts = [len(c) - 1 for c in contexts]
    out: list[Any] = [None] * len(contexts)

    async def one_group(group: list[int]) -> None:
        start = starts[group[0]]
        resp = await client.generate(
            {
                "input_ids": [list(contexts[i]) + list(drafts[i]) for i in group],
                "sampling_params": {"max_new_tokens": 0, "temperature": 0.0},
                "return_logprob": True,
                "top_logprobs_num": top_k,
                "logprob_start_len": start,
            }
        )
        if not isinstance(resp, list) or len(resp) != len(group):
            raise ValueError(f"batched scoring: sent {len(group)} rows, got an unexpected answer")
        for i, r in zip(group, resp):
            skip = starts[i] - start + 1
            draft = list(drafts[i])
            logprobs = input_logprobs(r)[skip:]
            tops = input_top_logprobs(r)[skip:]
            scored_ids = [int(entry[1]) for entry in r["meta_info"]["input_token_logprobs"][skip:]]
            if scored_ids != draft or len(tops) != len(draft) or any(lp is None for lp in logprobs):
                raise ValueError(
                    f"teacher scoring misaligned: sent {len(draft)} draft tokens "
                    f"{draft[:8]}..., got logprobs for {scored_ids[:8]}... "
                    f"({len(logprobs)} logprobs, {len(tops)} top-k lists)"
                )
            out[i] = ([float(lp) for lp in logprobs], [top or {} for top in tops])

    await asyncio.gather(*(one_group(g) for g in _score_groups(starts, span)))
    return out


def decode_output(tokenizer, ids: list[int], ended_on_eos: bool) -> str:
    """The row's text, as the server's `text` would be: the closing EOS and special tokens left out."""
    return tokenizer.decode(ids[:-1] if ended_on_eos else ids, skip_special_tokens=True)


async def lockstep_rows(
    ctx: SynthContext, problems: list[dict], prompts: list[str], num_responses: int, new_trajectory, run_lockstep
) -> list[dict]:
    """num_responses trajectories per problem, advanced together by run_lockstep(trajectories), as rows.

    new_trajectory(prompt, prompt_ids, problem_id, sample) makes one trajectory.
    """
    jobs = []
    for problem, prompt in zip(problems, prompts):
        prompt_ids = ctx.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        jobs += [
            (problem, new_trajectory(prompt, list(prompt_ids), problem["id"], sample))
            for sample in range(num_responses)
        ]
    await run_lockstep([t for _problem, t in jobs])
    return [
        {
            "id": problem["id"],
            "sample": t.sample,
            "input": problem["input"],
            "output": decode_output(ctx.tokenizer, t.generated, t.stats["finish"] == "eos"),
            "stats": t.stats,
        }
        for problem, t in jobs
    ]


def unfinished(trajectories: list, max_tokens: int) -> list:
    """The trajectories still running; one that reached max_tokens is finished (finish stays "length")."""
    active = []
    for t in trajectories:
        if not t.done and len(t.generated) >= max_tokens:
            t.done = True
        if not t.done:
            active.append(t)
    return active


async def draft_and_score(
    ctx: SynthContext,
    student: ServerClient,
    active: list,
    wants: list[int],
    temperature: float,
    seeds: list[int],
    top_k: int,
    stop: str | None = None,
):
    """The first half of a draft-and-verify round, shared by MOTAB and SKD: one batched student
    draft for the active trajectories, then teacher scoring of the non-empty drafts. A row whose
    draft came back empty (its context window is full) is finished with finish="context".

    Returns (contexts, drafts, live, scores): `live` indexes the rows that were scored and
    `scores[i]` is the (logprobs, tops) of row live[i]."""
    contexts = [t.prompt_ids + t.generated for t in active]
    drafts = await generate_ids_batch(student, contexts, wants, temperature, seeds, stop)
    live = []
    for k, (t, draft) in enumerate(zip(active, drafts)):
        if draft.ids:
            live.append(k)
        else:
            t.stats["finish"] = "context"
            t.done = True
    scores = (
        await score_continuations(ctx.teacher, [contexts[k] for k in live], [drafts[k].ids for k in live], top_k)
        if live
        else []
    )
    return contexts, drafts, live, scores
