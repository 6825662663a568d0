"""SGLang's native `/generate`: request body -> rows, results -> response (pure functions).

`codec` is the model's tokenizer side (engine.Codec, or the Engine itself). What is accepted,
what each field means and what is refused: server.py's docstring.
"""

from __future__ import annotations

from typing import Any

from motab.serving import limits
from motab.serving.limits import RequestError
from motab.serving.request import (
    Row,
    RowResult,
    RowSeeds,
    Sampling,
    is_int,
    number,
    parse_sampling,
    request_id,
)


def parse_generate(codec: Any, body: Any, default_seed: int) -> tuple[list[Row], bool]:
    """/generate body -> rows (prompt-major, n copies each) and whether the input was a batch."""
    if not isinstance(body, dict):
        raise RequestError("body: expected a JSON object")
    prompts, batch = _prompts(codec, body)
    raw_sampling = body.get("sampling_params")
    if isinstance(raw_sampling, list):
        if len(raw_sampling) != len(prompts):
            raise RequestError(f"sampling_params: {len(raw_sampling)} entries for {len(prompts)} prompts")
        samplings = [parse_sampling(s, default_seed, f"sampling_params[{k}].") for k, s in enumerate(raw_sampling)]
    else:
        samplings = [parse_sampling(raw_sampling, default_seed)] * len(prompts)

    refuse_unsupported_fields(body)
    n_prompts = len(prompts)
    return_logprob = per_prompt(body, "return_logprob", n_prompts, _boolean, False)
    top_n = per_prompt(
        body, "top_logprobs_num", n_prompts, lambda v, where: number({where: v}, where, "", int, 0, 0), 0
    )
    starts = per_prompt(
        body, "logprob_start_len", n_prompts, lambda v, where: number({where: v}, where, "", int, -1, -1), -1
    )
    if not isinstance(body.get("return_text_in_logprobs", False), bool):
        raise RequestError("return_text_in_logprobs: expected a boolean")

    raw_list = raw_sampling if isinstance(raw_sampling, list) else [raw_sampling] * len(prompts)
    limits.check_rows(
        codec,
        prompts,
        samplings,
        max_given=[isinstance(r, dict) and r.get("max_new_tokens") is not None for r in raw_list],
    )
    rows = _rows(body, prompts, samplings, return_logprob, top_n, starts)
    return rows, batch or len(rows) > 1


def _prompts(codec: Any, body: dict) -> tuple[list[list[int]], bool]:
    """The prompts' token ids from `text` or `input_ids`, and whether they came as a batch."""
    text, input_ids = body.get("text"), body.get("input_ids")
    if (text is None) == (input_ids is None):
        raise RequestError("text/input_ids: give exactly one of `text` or `input_ids`")
    if text is not None:
        limits.check_text_length(codec, text, "text")
        if isinstance(text, str):
            prompts, batch = [codec.encode(text)], False
        elif isinstance(text, list) and text and all(isinstance(t, str) for t in text):
            prompts, batch = [codec.encode(t) for t in text], True
        else:
            raise RequestError("text: expected a string or a non-empty list of strings")
    elif isinstance(input_ids, list) and input_ids and all(is_int(t) for t in input_ids):
        prompts, batch = [list(input_ids)], False
    elif (
        isinstance(input_ids, list)
        and input_ids
        and all(isinstance(p, list) and p for p in input_ids)
        and all(is_int(t) for p in input_ids for t in p)
    ):
        prompts, batch = [list(p) for p in input_ids], True
    else:
        raise RequestError("input_ids: expected a non-empty list of integers or a list of such lists")
    for p_index, prompt in enumerate(prompts):
        if not prompt:
            raise RequestError(f"text[{p_index}]: the prompt encodes to no tokens")
        bad = [t for t in prompt if not 0 <= t < codec.vocab_size]
        if bad:
            raise RequestError(f"input_ids: token id {bad[0]} outside the vocabulary [0, {codec.vocab_size})")
    return prompts, batch


def _rows(
    body: dict,
    prompts: list[list[int]],
    samplings: list[Sampling],
    return_logprob: list[bool],
    top_n: list[int],
    starts: list[int],
) -> list[Row]:
    """n rows per prompt, prompt-major, each with its own seed (request.RowSeeds)."""
    rows: list[Row] = []
    seeds = RowSeeds()
    for k, (prompt, sampling) in enumerate(zip(prompts, samplings)):
        start = starts[k]
        row_start = len(prompt) - 1 if start == -1 else start
        if row_start >= len(prompt):
            where = "logprob_start_len" + (f"[{k}]" if isinstance(body.get("logprob_start_len"), list) else "")
            raise RequestError(f"{where}: {start} must be smaller than the prompt length {len(prompt)}")
        for _ in range(sampling.n):
            rows.append(
                Row(
                    input_ids=prompt,
                    sampling=sampling,
                    seed=seeds(sampling.sampling_seed, prompt),
                    return_logprob=return_logprob[k],
                    top_logprobs_num=top_n[k],
                    logprob_start_len=row_start,
                )
            )
    return rows


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"{where}: expected a boolean, found {value!r:.60}")
    return value


def per_prompt(body: dict, key: str, n_prompts: int, check, default: Any) -> list:
    """A logprob setting given once or, as SGLang allows, as a list with one entry per prompt."""
    value = body.get(key)
    if value is None:
        return [default] * n_prompts
    if isinstance(value, list):
        if len(value) != n_prompts:
            raise RequestError(f"{key}: {len(value)} entries for {n_prompts} prompts")
        return [default if v is None else check(v, f"{key}[{k}]") for k, v in enumerate(value)]
    return [check(value, key)] * n_prompts


def refuse_unsupported_fields(body: dict) -> None:
    """SGLang /generate fields the embedded server does not implement: a 400 naming them, so a
    script that relies on one learns it here instead of getting silently different answers."""
    if body.get("stream"):
        raise RequestError("stream: streaming is not supported by the embedded server")
    if body.get("token_ids_logprob") is not None:
        raise RequestError("token_ids_logprob: not supported by the embedded server")
    rid = body.get("rid")
    if rid is not None and not (
        isinstance(rid, str) or (isinstance(rid, list) and all(isinstance(r, str) for r in rid))
    ):
        raise RequestError(f"rid: expected a string or a list of strings, found {rid!r:.60}")


def _triples(codec: Any, pairs: list[tuple[float | None, int]], with_text: bool) -> list[list]:
    if not with_text:
        return [[lp, tid, None] for lp, tid in pairs]
    return [[lp, tid, codec.token_text(tid)] for lp, tid in pairs]


def format_generate(codec: Any, body: dict, rows: list[Row], results: list[RowResult]) -> list[dict]:
    """One SGLang result per row: text, output_ids, meta_info (ids, finish_reason, logprobs)."""
    with_text = bool(body.get("return_text_in_logprobs", False))
    out = []
    rid = body.get("rid")
    for index, (row, res) in enumerate(zip(rows, results)):
        # SGLang answers with the caller's rid (one per prompt when a list); else a deterministic id
        given = rid[index] if isinstance(rid, list) and index < len(rid) else rid if isinstance(rid, str) else None
        meta: dict[str, Any] = {
            "id": given or request_id(body, index),
            "finish_reason": res.finish_reason,
            "prompt_tokens": len(row.input_ids),
            "completion_tokens": len(res.output_ids),
            "cached_tokens": 0,
        }
        if row.return_logprob:
            meta["input_token_logprobs"] = _triples(
                codec, list(zip(res.input_logprobs, res.input_ids_from_start)), with_text
            )
            meta["output_token_logprobs"] = _triples(codec, list(zip(res.output_logprobs, res.output_ids)), with_text)
            if row.top_logprobs_num > 0:
                meta["input_top_logprobs"] = [
                    None if top is None else _triples(codec, top, with_text) for top in res.input_top
                ]
                meta["output_top_logprobs"] = [_triples(codec, top, with_text) for top in res.output_top]
        out.append({"text": res.text, "output_ids": res.output_ids, "meta_info": meta})
    return out
