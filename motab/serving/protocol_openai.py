"""OpenAI's `/v1/completions` and `/v1/chat/completions`: body -> rows, results -> response (pure).

`codec` is the model's tokenizer side (engine.Codec, or the Engine itself). Chat requests that leave
out temperature, top_p or top_k get the model's defaults, as SGLang (request.model_sampling_defaults).
As SGLang, a `model` other than the served name is a 400 ("The model `x` does not exist"; vLLM
answers 404 with the same words), and a chat role other than system, user or assistant is refused
(a `tool` or `robot` message was once rendered into the prompt as text).
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

# our Sampling field <- OpenAI's body field
FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("n", "n"),
    ("stop", "stop"),
    ("sampling_seed", "seed"),
    ("max_new_tokens", "max_tokens"),
    ("stop_token_ids", "stop_token_ids"),
)


def openai_sampling(body: dict, default_seed: int, max_default: int, defaults: dict | None = None) -> Sampling:
    """The request's Sampling; `defaults` (the model's, for chat) under what the body gives."""
    raw: dict[str, Any] = dict(defaults or {})
    for ours, theirs in FIELDS:
        if body.get(theirs) is not None:
            raw[ours] = body[theirs]
    if "max_new_tokens" not in raw and body.get("max_completion_tokens") is not None:
        raw["max_new_tokens"] = body["max_completion_tokens"]
    raw.setdefault("max_new_tokens", max_default)
    try:
        return parse_sampling(raw, default_seed, "")
    except RequestError as exc:  # name OpenAI's field, not ours
        message = str(exc).replace("sampling_seed", "seed").replace("max_new_tokens", "max_tokens")
        raise RequestError(message) from None


def _logprob_args(body: dict, chat: bool) -> tuple[bool, int]:
    """(return logprobs, top logprobs per token): chat's logprobs + top_logprobs, or completions' logprobs."""
    if chat:
        want = body.get("logprobs", False) or False
        if not isinstance(want, bool):
            raise RequestError(f"logprobs: expected a boolean, found {want!r:.60}")
        top = number(body, "top_logprobs", "", int, 0, 0, 20)
        return want, top if want else 0
    value = body.get("logprobs")
    if value is None:
        return False, 0
    if not is_int(value) or value < 0:
        raise RequestError(f"logprobs: expected a non-negative integer, found {value!r:.60}")
    return True, value


ROLES = ("system", "user", "assistant")


def check_model(codec: Any, body: dict) -> None:
    """Refuse a `model` this server does not serve (left out or null: the served one)."""
    name = body.get("model")
    served = codec.served_model_name
    if name is not None and name not in (served, codec.model_dir):
        raise RequestError(f"model: The model `{name!s:.200}` does not exist. The served model name is `{served}`.")


def check_roles(messages: list[dict]) -> None:
    for k, message in enumerate(messages):
        if message["role"] not in ROLES:
            raise RequestError(
                f"messages[{k}].role: {message['role']!r:.60} is not supported by the embedded server "
                f"(expected one of {', '.join(ROLES)})"
            )


def _prompts(codec: Any, body: dict, chat: bool) -> list[list[int]]:
    """Token ids of each prompt: the chat template over `messages`, or `prompt`."""
    if chat:
        messages = body.get("messages")
        if not (
            isinstance(messages, list)
            and messages
            and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            raise RequestError("messages: expected a non-empty list of {role, content} objects with string content")
        check_roles(messages)
        text = codec.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        limits.check_text_length(codec, text, "messages")
        return [codec.encode(text)]
    prompt = body.get("prompt")
    limits.check_text_length(codec, prompt, "prompt")
    if isinstance(prompt, str):
        return [codec.encode(prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return [codec.encode(p) for p in prompt]
    if isinstance(prompt, list) and prompt and all(is_int(t) for t in prompt):
        return [list(prompt)]
    raise RequestError("prompt: expected a string, a list of strings or a list of token ids")


def parse_openai(codec: Any, body: Any, default_seed: int, chat: bool) -> tuple[list[Row], list[int]]:
    """OpenAI body -> rows (prompt-major, n each) and the prompt length of each prompt."""
    if not isinstance(body, dict):
        raise RequestError("body: expected a JSON object")
    check_model(codec, body)
    prompts = _prompts(codec, body, chat)
    if any(not p for p in prompts):
        raise RequestError("prompt: a prompt encodes to no tokens")
    longest = max(len(p) for p in prompts)
    max_default = max(1, codec.max_length - longest) if codec.max_length else 1024
    sampling = openai_sampling(body, default_seed, max_default, codec.sampling_defaults if chat else None)
    want, top = _logprob_args(body, chat)
    given = body.get("max_tokens") is not None or body.get("max_completion_tokens") is not None
    limits.check_rows(codec, prompts, [sampling] * len(prompts), openai=True, max_given=[given] * len(prompts))
    rows: list[Row] = []
    seeds = RowSeeds()
    for prompt in prompts:
        for _ in range(sampling.n):
            rows.append(
                Row(
                    input_ids=prompt,
                    sampling=sampling,
                    seed=seeds(sampling.sampling_seed, prompt),
                    return_logprob=want,
                    top_logprobs_num=top,
                    logprob_start_len=len(prompt) - 1,
                )
            )
    return rows, [len(p) for p in prompts]


def _chat_logprobs(codec: Any, row: Row, res: RowResult) -> dict:
    tokens = [codec.token_text(t) for t in res.output_ids]
    content = []
    for k, (tok, lp) in enumerate(zip(tokens, res.output_logprobs)):
        entry = {"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8")), "top_logprobs": []}
        if row.top_logprobs_num > 0:
            entry["top_logprobs"] = [
                {"token": codec.token_text(t), "logprob": v, "bytes": list(codec.token_text(t).encode("utf-8"))}
                for v, t in res.output_top[k]
            ]
        content.append(entry)
    return {"content": content}


def _completion_logprobs(codec: Any, row: Row, res: RowResult) -> dict:
    tokens = [codec.token_text(t) for t in res.output_ids]
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok)
    return {
        "tokens": tokens,
        "token_logprobs": res.output_logprobs,
        "text_offset": offsets,
        "top_logprobs": [{codec.token_text(t): v for v, t in top} for top in res.output_top]
        if row.top_logprobs_num > 0
        else None,
    }


def _finish(res: RowResult) -> str:
    return "length" if res.finish_reason.get("type") == "length" else "stop"


def format_openai(
    codec: Any, body: dict, rows: list[Row], results: list[RowResult], prompt_lens: list[int], chat: bool
) -> dict:
    """The OpenAI response: one choice per row, usage over all of them, a deterministic id."""
    choices = []
    for index, (row, res) in enumerate(zip(rows, results)):
        logprobs = None
        if row.return_logprob:
            logprobs = (_chat_logprobs if chat else _completion_logprobs)(codec, row, res)
        if chat:
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": res.text},
                    "logprobs": logprobs,
                    "finish_reason": _finish(res),
                }
            )
        else:
            choices.append({"index": index, "text": res.text, "logprobs": logprobs, "finish_reason": _finish(res)})
    prompt_tokens = sum(prompt_lens)
    completion_tokens = sum(len(r.output_ids) for r in results)
    return {
        "id": ("chatcmpl-" if chat else "cmpl-") + request_id(body, 0)[:24],
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,  # fixed, not the clock: equal requests must give equal bytes
        "model": codec.served_model_name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
