"""Step-level text requests of the MOTAB release's synthesis scripts (1-, 2-, 3-generate-*.py),
batched: one /generate request per role per round for all trajectories that need it.

The scripts talk text, not token ids: the context is a string (question + accepted steps, each
followed by "\\n\\n"), every request sends it as `text` and the server tokenizes it. These helpers
send exactly the scripts' payloads (one row per trajectory) and read the answers as the scripts
do, with the released code's quirks switchable by `Compat` (see METHODS.md, "## Synthesis"):

released (the scripts' behaviour)            paper (as the paper describes it)
- the step stop string ".\\n\\n" is trimmed   - the step keeps its "."
  by the server, so each step loses its "."
- EOS answers finish_reason type "stop", as  - EOS ends the trajectory
  the stop string does: generation goes on
- the first scored token's logprob is None   - scoring starts one token earlier, so every
  and is read as 0 (p = 1)                      token of the step is scored
- the entropy reads output_token_logprobs[0]  - it reads output_top_logprobs[0], the top-k list
  (one token), so H = 0
- a failed scoring call is treated as the    - a failed scoring call stops the job
  script treats it (MOTAB: accept; SKD:
  teacher rewrites)
- the question is sent raw                   - the question is wrapped in the chat template
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from motab.serving.client import ServerClient, ServerError
from motab.synthesis.context import request_seed

STEP_STOP = ".\n\n"  # the scripts' step boundary (stop=[".\n\n"])
STEP_JOIN = "\n\n"  # appended after each accepted step, and between steps in the row
COMPATS = ("released", "paper")


@dataclass(frozen=True)
class Compat:
    """Which reading of the scripts a method follows: `released` reproduces the code exactly."""

    mode: str = "released"

    def __post_init__(self):
        if self.mode not in COMPATS:
            raise ValueError(f"compat: expected one of {COMPATS}, found {self.mode!r}")

    @property
    def released(self) -> bool:
        return self.mode == "released"


@dataclass(frozen=True)
class Step:
    """One generated step as the scripts record it."""

    text: str
    logprobs: list[float]  # output_token_logprobs values (a None read as 0.0, as parse_logprobs does)
    finish_type: str  # finish_reason["type"]: "stop" (stop string OR EOS), "length", ...
    hit_eos: bool  # stopped on a stop token (EOS), not on the stop string
    success: bool = True

    @property
    def tokens(self) -> int:
        return len(self.logprobs)


FAILED = Step(text="", logprobs=[], finish_type="error", hit_eos=False, success=False)


def geo_mean_prob(logprobs: list[float]) -> float:
    """exp(mean logprob) (the scripts' avg_prob_from_logprobs); 0.0 for no tokens."""
    if not logprobs:
        return 0.0
    return math.exp(sum(logprobs) / len(logprobs))


def _values(entries: list | None) -> list[float]:
    """The scripts' parse_logprobs, values only: a None logprob counts as 0.0."""
    return [0.0 if e[0] is None else float(e[0]) for e in entries or [] if isinstance(e, list) and len(e) >= 3]


def _read_step(resp: dict, stop: str | None, compat: Compat) -> Step:
    meta = resp.get("meta_info") or {}
    finish = meta.get("finish_reason") or {}
    finish_type = finish.get("type", "unknown") if isinstance(finish, dict) else str(finish)
    matched = finish.get("matched") if isinstance(finish, dict) else None
    text = resp.get("text", "")
    if not compat.released and stop and matched == stop:
        text += stop[: len(stop.rstrip())]  # give the step back the "." the server trimmed with the stop string
    hit_eos = isinstance(matched, int) and not isinstance(matched, bool)
    return Step(
        text=text, logprobs=_values(meta.get("output_token_logprobs")), finish_type=finish_type, hit_eos=hit_eos
    )


async def generate_steps(
    client: ServerClient,
    contexts: list[str],
    max_new_tokens: list[int],
    temperature: float,
    seeds: list[int],
    stop: str | None,
    compat: Compat,
) -> list[Step]:
    """One generation per context in one request, with the scripts' payload (stop=[".\\n\\n"] for a
    step, none for MOTAB's teacher continuation). A failed request fails every row (Step.success
    False), as each of the scripts' calls would."""
    if not contexts:
        return []
    samplings = []
    for want, seed in zip(max_new_tokens, seeds):
        sampling: dict[str, Any] = {"temperature": temperature, "max_new_tokens": want, "sampling_seed": seed}
        if stop:
            sampling["stop"] = [stop]
        samplings.append(sampling)
    try:
        resp = await client.generate(
            {
                "text": list(contexts),
                "return_logprob": True,
                "return_text_in_logprobs": True,
                "sampling_params": samplings,
            }
        )
    except ServerError:
        if not compat.released:
            raise
        return [FAILED] * len(contexts)
    return [_read_step(r, stop, compat) for r in resp]


async def score_steps(
    client: ServerClient, tokenizer, contexts: list[str], steps: list[str], compat: Compat
) -> list[list[float] | None]:
    """Teacher logprobs of each step given its context (None where the scoring call fails).

    The scripts send text = context + step with logprob_start_len = len(encode(context)) and read
    input_token_logprobs; its first entry is None and counts as logprob 0 (released). Paper mode
    starts one token earlier and drops that entry, so every token from the context's end is scored.
    A start the server would refuse (the step re-tokenised into the context) is a failed call.
    """
    if not contexts:
        return []
    full = [c + s for c, s in zip(contexts, steps)]
    starts, send = [], []
    for k, (context, text) in enumerate(zip(contexts, full)):
        start = len(tokenizer.encode(context, add_special_tokens=False))
        if not compat.released:
            start -= 1
        if 0 <= start < len(tokenizer.encode(text, add_special_tokens=False)):
            starts.append(start)
            send.append(k)
    out: list[list[float] | None] = [None] * len(contexts)
    if len(send) < len(contexts) and not compat.released:
        bad = next(k for k in range(len(contexts)) if k not in send)
        raise ValueError(f"teacher scoring: step {steps[bad][:60]!r} adds no token to its context")
    if not send:
        return out
    try:
        resp = await client.generate(
            {
                "text": [full[k] for k in send],
                "return_logprob": True,
                "return_text_in_logprobs": True,
                "logprob_start_len": starts,
                "sampling_params": {"temperature": 0.0, "max_new_tokens": 1},
            }
        )
    except ServerError:
        if not compat.released:
            raise
        return out
    for k, r in zip(send, resp):
        entries = (r.get("meta_info") or {}).get("input_token_logprobs") or []
        if not entries:
            continue  # the script's 'No input_token_logprobs returned': a failed call
        out[k] = _values(entries) if compat.released else _values(entries[1:])
    return out


def topk_entropy(logprobs: list[float]) -> float | None:
    """Entropy of the renormalised distribution over the given logprobs (the script's formula,
    with its +1e-12 inside the log); None when the probabilities sum to ~0."""
    probs = [math.exp(lp) for lp in logprobs]
    total = sum(probs)
    if total <= 1e-12:
        return None
    norm = [p / total for p in probs]
    return -sum(p * math.log(p + 1e-12) for p in norm if p > 0)


async def teacher_entropies(client: ServerClient, contexts: list[str], top_k: int, compat: Compat) -> list[float]:
    """H at each context: the script's request (top_logprobs_num = k, one greedy token).

    released: the script reads output_token_logprobs[0], the sampled token's single triple, so the
    'renormalised top-k' has one entry and H = -log(1 + 1e-12) ~ -1e-12 (boundary = eps0).
    paper: output_top_logprobs[0], the k most likely next tokens. A failed call gives H = 0 (as
    the script falls back) in released mode."""
    if not contexts:
        return []
    try:
        resp = await client.generate(
            {
                "text": list(contexts),
                "return_logprob": True,
                "return_text_in_logprobs": True,
                "top_logprobs_num": top_k,
                "sampling_params": {"temperature": 0.0, "max_new_tokens": 1},
            }
        )
    except ServerError:
        if not compat.released:
            raise
        return [0.0] * len(contexts)
    out = []
    for r in resp:
        meta = r.get("meta_info") or {}
        field = "output_token_logprobs" if compat.released else "output_top_logprobs"
        positions = meta.get(field) or []
        if not positions:
            if not compat.released:
                raise ValueError(f"teacher entropy: the server returned no {field}")
            out.append(0.0)
            continue
        pos0 = positions[0]
        if pos0 and isinstance(pos0[0], list):  # a top-k list of triples
            lps = [e[0] for e in pos0 if e and e[0] is not None]
        else:  # one triple [logprob, id, text]
            lps = [pos0[0]] if pos0 and pos0[0] is not None else []
        h = topk_entropy(lps) if lps else None
        if h is None and not compat.released:
            raise ValueError("teacher entropy: empty top-k distribution")
        out.append(0.0 if h is None else h)
    return out


def question_context(tokenizer, question: str, compat: Compat) -> str:
    """The trajectory's starting context: the raw question (released) or its chat prompt (paper)."""
    if compat.released:
        return question
    from motab.chat import build_prompt

    return build_prompt(tokenizer, question)


async def lockstep_rows(ctx, problems: list[dict], params, trajectory, lockstep, row) -> list[dict]:
    """The rows of a step method's chunk: num_responses trajectories per problem, started from the
    question (raw in released mode, the chat prompt in paper mode), advanced together by `lockstep`
    and written by `row(t) -> (text, stats)`. `trajectory(problem_id, sample, context)` makes one."""
    compat = Compat(params.compat)
    jobs = [
        (p, trajectory(p["id"], s, question_context(ctx.tokenizer, p["input"], compat)))
        for p in problems
        for s in range(params.num_responses)
    ]
    await lockstep(ctx, [t for _, t in jobs], params)
    rows = []
    for problem, t in jobs:
        text, stats = row(t)
        rows.append(
            {"id": problem["id"], "sample": t.sample, "input": problem["input"], "output": text, "stats": stats}
        )
    return rows


async def student_drafts(student: ServerClient, active: list, params, compat: Compat) -> list[tuple]:
    """MOTAB's and SKD's student turn: each active trajectory's next step, sampled at
    params.temperature within params.max_step_tokens, seeded by (seed, problem, sample, step).
    Returns (trajectory, draft) for those whose step came back non-empty; a failed call or an empty
    step (direct EOS) ends the trajectory (`done`)."""
    drafts = await generate_steps(
        student,
        [t.context for t in active],
        [params.max_step_tokens] * len(active),
        params.temperature,
        [request_seed(params.seed, t.problem_id, t.sample, len(t.steps), "student") for t in active],
        STEP_STOP,
        compat,
    )
    live = []
    for t, draft in zip(active, drafts):
        if not draft.success or not draft.text:
            t.done = True
        else:
            live.append((t, draft))
    return live
