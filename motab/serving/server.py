"""Embedded inference server: an HF checkpoint behind the subset of SGLang's protocol we use.

`python -m motab serve --model DIR [--host 127.0.0.1] [--port 0] [--port-file F] [--threads N]
[--seed 0] [--max-batch-size 64]`

Endpoints (field names as in SGLang's `GenerateReqInput` and its tokenizer manager's meta_info):
  GET  /health, /get_model_info, /v1/models
  POST /generate                (SGLang native: text | input_ids, sampling_params, return_logprob,
                                 top_logprobs_num, logprob_start_len (each of these three once or
                                 as a per-prompt list), return_text_in_logprobs, rid,
                                 sampling_params.no_stop_trim; refused with a 400 that names
                                 them: stream, token_ids_logprob, sampling_params.min_new_tokens > 0)
  POST /v1/completions, /v1/chat/completions   (OpenAI shapes, with logprobs and usage)

Semantics copied from SGLang (checked in its source, not its code):
- `logprob_start_len` defaults to -1, meaning "no prompt logprobs" (internally len(prompt) - 1).
- `input_token_logprobs` covers prompt positions logprob_start_len .. end, as
  [logprob, token_id, text|None] triples; the first entry's logprob is always None (SGLang pads
  it: the logits of position start-1 are not computed), so entry j > 0 is
  log p(prompt[start + j] | prompt[: start + j]). `input_top_logprobs` likewise, first entry None.
- finish_reason is {"type": "stop", "matched": token_id | stop_string} or
  {"type": "length", "length": max_new_tokens}; a matched stop string is cut from `text`
  (output_ids keep every generated token); a matched stop token is left out of `text`.
- With `n` > 1 in sampling_params, each prompt is repeated n times, prompt-major.
- Logprobs are log_softmax of the raw logits (temperature 1, before top-p/top-k). SGLang returns
  exactly this for prompt positions and for greedy decoding; for sampled tokens at temperature
  != 1 it returns the temperature-scaled logprob unless started with
  SGLANG_RETURN_ORIGINAL_LOGPROB=1. Teacher scoring (max_new_tokens=0) is unaffected.

Determinism: one worker thread runs one request at a time; a request is its own batch (split
into --max-batch-size chunks in order). Each row samples from its own generator seeded by
(sampling_seed, prompt ids, occurrence), where occurrence counts the earlier rows of the same
request with the same seed and prompt (the n copies, or a prompt listed twice). A row's draws
therefore never depend on which other rows share its request (as with SGLang's per-request
`sampling_seed` under deterministic inference). The same request gives the same bytes.

What is refused (400 naming the field), what /health reports and how a disconnected client's
generation stops: limits.py (`--max-rows`, `--stall-timeout-s`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motab.serving import limits
from motab.serving.limits import RequestError  # re-exported: the 400 of every refusal

# ----------------------------------------------------------------------------- request parsing


@dataclass
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    n: int = 1
    sampling_seed: int | None = None
    skip_special_tokens: bool = True
    ignore_eos: bool = False
    no_stop_trim: bool = False   # SGLang: keep a matched stop string (or stop token's text) in `text`


@dataclass
class Row:
    """One sequence to run: prompt ids, its sampling, and what to return."""

    input_ids: list[int]
    sampling: Sampling
    seed: int
    return_logprob: bool = False
    top_logprobs_num: int = 0
    logprob_start_len: int = -1


@dataclass
class RowResult:
    output_ids: list[int]
    text: str
    finish_reason: dict
    output_logprobs: list[float] = field(default_factory=list)
    output_top: list[list[tuple[float, int]]] = field(default_factory=list)
    input_logprobs: list[float | None] = field(default_factory=list)
    input_top: list[list[tuple[float, int]] | None] = field(default_factory=list)
    input_ids_from_start: list[int] = field(default_factory=list)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _number(d: dict, key: str, where: str, kind: type, default: Any, low: float | None = None,
            high: float | None = None) -> Any:
    value = d.get(key, default)
    if value is None:
        return default
    ok = _is_int(value) if kind is int else (isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        raise RequestError(f"{where}{key}: expected {kind.__name__}, found {type(value).__name__} {value!r:.60}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise RequestError(f"{where}{key}: {value!r} out of range [{low}, {high}]")
    return kind(value)


def parse_sampling(raw: Any, default_seed: int, where: str = "sampling_params.") -> Sampling:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RequestError(f"{where.rstrip('.')}: expected an object, found {type(raw).__name__}")
    s = Sampling()
    s.temperature = _number(raw, "temperature", where, float, 1.0, 0.0)
    s.top_p = _number(raw, "top_p", where, float, 1.0, 1e-9, 1.0)
    s.top_k = _number(raw, "top_k", where, int, -1, -1)
    if s.top_k == 0:
        raise RequestError(f"{where}top_k: 0 is not allowed (use -1 for no limit)")
    s.max_new_tokens = _number(raw, "max_new_tokens", where, int, 128, 0)
    s.n = _number(raw, "n", where, int, 1, 1)
    s.sampling_seed = _number(raw, "sampling_seed", where, int, default_seed)
    stop = raw.get("stop")
    if stop is None:
        s.stop = []
    elif isinstance(stop, str):
        s.stop = [stop] if stop else []
    elif isinstance(stop, list) and all(isinstance(x, str) for x in stop):
        s.stop = [x for x in stop if x]
    else:
        raise RequestError(f"{where}stop: expected a string or a list of strings, found {stop!r:.60}")
    ids = raw.get("stop_token_ids")
    if ids is None:
        s.stop_token_ids = []
    elif isinstance(ids, list) and all(_is_int(x) for x in ids):
        s.stop_token_ids = list(ids)
    else:
        raise RequestError(f"{where}stop_token_ids: expected a list of integers, found {ids!r:.60}")
    refuse_unsupported_sampling(raw, where)
    for key in ("skip_special_tokens", "ignore_eos", "no_stop_trim"):
        value = raw.get(key, getattr(s, key))
        if not isinstance(value, bool):
            raise RequestError(f"{where}{key}: expected a boolean, found {value!r:.60}")
        setattr(s, key, value)
    return s


def refuse_unsupported_sampling(raw: dict, where: str) -> None:
    """SGLang sampling fields this server does not implement: refused by name, never ignored."""
    if raw.get("min_new_tokens") not in (None, 0):
        raise RequestError(f"{where}min_new_tokens: not supported by the embedded server (only 0)")
    # our clients state these at their neutral values (client.FULL_VOCABULARY); anything else would
    # silently sample differently from SGLang
    if raw.get("min_p") not in (None, 0, 0.0):
        raise RequestError(f"{where}min_p: not supported by the embedded server (only 0)")
    if raw.get("repetition_penalty") not in (None, 1, 1.0):
        raise RequestError(f"{where}repetition_penalty: not supported by the embedded server (only 1)")


# --- sampling defaults (motab-gpupath), as SGLang 0.5.9 (envs/*.yaml) with --sampling-defaults
# model, its default: a /v1/chat/completions request that leaves out temperature, top_p or top_k
# gets ModelConfig.get_default_sampling_params(), i.e. GenerationConfig.from_pretrained(model)
# .to_dict() under transformers 4.57.1 (SGLang's pin): the file's values over transformers'
# defaults 1.0 / 1.0 / 50, and nothing without a generation_config.json. Native /generate and
# /v1/completions keep the protocol's defaults (1.0, 1.0, -1) there. min_p and repetition_penalty,
# also read by SGLang, are not implemented here. Our own clients send every key (client.py).
MODEL_DEFAULT_KEYS = ("temperature", "top_p", "top_k")
TRANSFORMERS_4_57_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": 50}


def model_sampling_defaults(model_dir: str | Path) -> dict[str, Any]:
    """SGLang's chat sampling defaults for the model in `model_dir` (see above)."""
    path = Path(model_dir) / "generation_config.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return TRANSFORMERS_4_57_DEFAULTS | {key: raw[key] for key in MODEL_DEFAULT_KEYS if raw.get(key) is not None}


# --- end sampling defaults


def row_seed(seed: int, prompt_ids: list[int], occurrence: int) -> int:
    """The generator seed of a row: its sampling seed, its prompt and how many earlier rows of the
    request had the same seed and prompt (stable across runs; not its position in the batch)."""
    head = f"{seed}:{occurrence}:".encode()
    digest = hashlib.sha256(head + array("q", prompt_ids).tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class RowSeeds:
    """row_seed for the rows of one request, counting the occurrences of each (seed, prompt)."""

    def __init__(self):
        self.seen: dict[tuple[int, tuple[int, ...]], int] = {}

    def __call__(self, seed: int, prompt_ids: list[int]) -> int:
        key = (seed, tuple(prompt_ids))
        occurrence = self.seen.get(key, 0)
        self.seen[key] = occurrence + 1
        return row_seed(seed, prompt_ids, occurrence)


def request_id(body: Any, index: int) -> str:
    """A deterministic id: equal requests get equal ids, so responses are byte-identical."""
    canon = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{canon}#{index}".encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------- the engine


class Engine:
    """Loads the checkpoint once; `run(rows)` generates for a batch of rows (not thread-safe)."""

    def __init__(self, model_dir: str, max_batch_size: int = 64):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.model_dir = str(model_dir)
        self.sampling_defaults = model_sampling_defaults(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32)
        self.model.eval()
        self.max_batch_size = max_batch_size
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        eos: set[int] = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None),
                       getattr(self.model.config, "eos_token_id", None)):
            if isinstance(source, int):
                eos.add(source)
            elif isinstance(source, (list, tuple)):
                eos.update(int(x) for x in source)
        self.eos_ids = eos
        self.vocab_size = int(self.model.config.vocab_size)
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)

    # -- helpers
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def run(self, rows: list[Row]) -> list[RowResult]:
        out: list[RowResult] = []
        for start in range(0, len(rows), self.max_batch_size):
            out.extend(self._run_batch(rows[start:start + self.max_batch_size]))
        return out

    # -- sampling
    def _sample(self, logits, rows: list[Row], gens: list, active: list[bool]) -> list[int]:
        """Next token per row from raw logits [B, V] (float32), using each row's generator."""
        torch = self.torch
        chosen: list[int] = []
        for i, row in enumerate(rows):
            if not active[i]:
                chosen.append(self.pad_id)
                continue
            s = row.sampling
            if s.temperature <= 1e-6 or s.top_k == 1:
                chosen.append(int(torch.argmax(logits[i]).item()))
                continue
            scaled = logits[i] / s.temperature
            if 0 < s.top_k < scaled.shape[-1]:
                kth = torch.topk(scaled, s.top_k).values[-1]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            probs = torch.softmax(scaled.double(), dim=-1)
            if s.top_p < 1.0:
                sorted_p, order = torch.sort(probs, descending=True)
                cum = torch.cumsum(sorted_p, dim=-1)
                drop = (cum - sorted_p) > s.top_p
                sorted_p = sorted_p.masked_fill(drop, 0.0)
                probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            cdf = torch.cumsum(probs, dim=-1)
            u = torch.rand(1, generator=gens[i], dtype=torch.float64) * cdf[-1]
            index = int(torch.searchsorted(cdf, u).clamp(max=probs.shape[-1] - 1).item())
            while probs[index] <= 0 and index > 0:  # never land on a masked token through rounding
                index -= 1
            chosen.append(index)
        return chosen

    def _top(self, logprobs_row, k: int) -> list[tuple[float, int]]:
        return self._top_many(logprobs_row[None, :], k)[0]

    def _top_many(self, logprobs, k: int) -> list[list[tuple[float, int]]]:
        """Top-k (logprob, token id) of each row of [P, V] logprobs, most likely first: one topk
        and one conversion for all positions (per-position calls dominated scoring time)."""
        values, ids = self.torch.topk(logprobs, min(k, logprobs.shape[-1]), dim=-1)  # sorted descending
        return [list(zip(v, t)) for v, t in zip(values.tolist(), ids.tolist())]

    def _stop_string_hit(self, text: str, stops: list[str]) -> tuple[str, int] | None:
        best: tuple[str, int] | None = None
        for stop in stops:
            pos = text.find(stop)
            if pos != -1 and (best is None or pos < best[1]):
                best = (stop, pos)
        return best

    def _run_batch(self, rows: list[Row]) -> list[RowResult]:
        torch = self.torch
        B = len(rows)
        lengths = [len(r.input_ids) for r in rows]
        L = max(lengths)
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, L), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, L - lengths[i]:] = torch.tensor(r.input_ids, dtype=torch.long)
            mask[i, L - lengths[i]:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        need_input = [r.return_logprob and r.logprob_start_len < lengths[i] - 1 for i, r in enumerate(rows)]
        results = [RowResult(output_ids=[], text="", finish_reason={}) for _ in rows]
        gens = [torch.Generator().manual_seed(r.seed) for r in rows]
        max_new = max(r.sampling.max_new_tokens for r in rows)

        from transformers import DynamicCache

        cache = DynamicCache()
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                             use_cache=True, logits_to_keep=0 if any(need_input) else 1)
            logits = out.logits.float()
            # Prompt logprobs, SGLang layout: from logprob_start_len, first entry None.
            for i, r in enumerate(rows):
                if not r.return_logprob:
                    continue
                start = r.logprob_start_len
                pad = L - lengths[i]
                res = results[i]
                res.input_ids_from_start = list(r.input_ids[start:])
                res.input_logprobs = [None]
                res.input_top = [None]
                if need_input[i]:
                    # logits at padded index pad + j - 1 predict prompt token j, j in start+1 .. len-1
                    lp = torch.log_softmax(logits[i, pad + start:pad + lengths[i] - 1], dim=-1)
                    targets = torch.tensor(r.input_ids[start + 1:], dtype=torch.long)
                    res.input_logprobs += lp.gather(-1, targets[:, None])[:, 0].tolist()
                    if r.top_logprobs_num > 0:
                        res.input_top += self._top_many(lp, r.top_logprobs_num)
                    else:
                        res.input_top += [None] * lp.shape[0]
            last = logits[:, -1, :]
            del out, logits

            active = [r.sampling.max_new_tokens > 0 for r in rows]
            for i in range(B):
                if not active[i]:
                    results[i].finish_reason = {"type": "length", "length": 0}
            # `live` maps batch rows of the cache to request rows; finished rows are dropped from
            # the batch (and the cache) so the remaining ones decode faster.
            live = list(range(B))
            want_lp = any(r.return_logprob for r in rows)
            for _step in range(max_new):
                limits.tick(self)  # /health's progress; stops here once the client has gone
                if not any(active[i] for i in live):
                    break
                live_rows = [rows[i] for i in live]
                chosen = self._sample(last, live_rows, [gens[i] for i in live], [active[i] for i in live])
                lps = torch.log_softmax(last, dim=-1) if want_lp else None
                for b, i in enumerate(live):
                    if not active[i]:
                        continue
                    r, tok, res = rows[i], chosen[b], results[i]
                    res.output_ids.append(tok)
                    if r.return_logprob:
                        res.output_logprobs.append(float(lps[b, tok]))
                        if r.top_logprobs_num > 0:
                            res.output_top.append(self._top(lps[b], r.top_logprobs_num))
                    s = r.sampling
                    hit = (self._stop_string_hit(self.decode(res.output_ids, s.skip_special_tokens), s.stop)
                           if s.stop else None)
                    if tok in s.stop_token_ids or (not s.ignore_eos and tok in self.eos_ids):
                        res.finish_reason = {"type": "stop", "matched": tok}
                        active[i] = False
                    elif hit is not None:
                        res.finish_reason = {"type": "stop", "matched": hit[0]}
                        active[i] = False
                    elif len(res.output_ids) >= s.max_new_tokens or (
                            self.max_length and lengths[i] + len(res.output_ids) >= self.max_length):
                        res.finish_reason = {"type": "length", "length": len(res.output_ids)}
                        active[i] = False
                keep = [b for b, i in enumerate(live) if active[i]]
                if not keep:
                    break
                next_ids = torch.tensor(chosen, dtype=torch.long)[:, None]
                if len(keep) < len(live):
                    index = torch.tensor(keep, dtype=torch.long)
                    cache.batch_select_indices(index)
                    mask, positions, next_ids = mask[index], positions[index], next_ids[index]
                    live = [live[b] for b in keep]
                mask = torch.cat([mask, torch.ones((len(live), 1), dtype=torch.long)], dim=1)
                pos = positions[:, -1:] + 1
                positions = torch.cat([positions, pos], dim=1)
                out = self.model(input_ids=next_ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                                 use_cache=True)
                last = out.logits[:, -1, :].float()

        for i, r in enumerate(rows):
            res = results[i]
            s = r.sampling
            matched = res.finish_reason.get("matched")
            if s.no_stop_trim:
                res.text = self.decode(res.output_ids, s.skip_special_tokens)
            elif res.finish_reason.get("type") == "stop" and _is_int(matched):
                res.text = self.decode(res.output_ids[:-1], s.skip_special_tokens)
            else:
                res.text = self.decode(res.output_ids, s.skip_special_tokens)
                if isinstance(matched, str):
                    res.text = res.text[:res.text.find(matched)] if matched in res.text else res.text
        return results


# ----------------------------------------------------------------------------- protocol: SGLang


def _triples(engine: Engine, pairs: list[tuple[float | None, int]], with_text: bool) -> list[list]:
    if not with_text:
        return [[lp, tid, None] for lp, tid in pairs]
    return [[lp, tid, engine.token_text(tid)] for lp, tid in pairs]


def parse_generate(engine: Engine, body: Any, default_seed: int) -> tuple[list[Row], bool]:
    """/generate body -> rows (prompt-major, n copies each) and whether the input was a batch."""
    if not isinstance(body, dict):
        raise RequestError("body: expected a JSON object")
    text, input_ids = body.get("text"), body.get("input_ids")
    if (text is None) == (input_ids is None):
        raise RequestError("text/input_ids: give exactly one of `text` or `input_ids`")
    if text is not None:
        limits.check_text_length(engine, text, "text")
        if isinstance(text, str):
            prompts, batch = [engine.encode(text)], False
        elif isinstance(text, list) and text and all(isinstance(t, str) for t in text):
            prompts, batch = [engine.encode(t) for t in text], True
        else:
            raise RequestError("text: expected a string or a non-empty list of strings")
    else:
        if isinstance(input_ids, list) and input_ids and all(_is_int(t) for t in input_ids):
            prompts, batch = [list(input_ids)], False
        elif (isinstance(input_ids, list) and input_ids and all(isinstance(p, list) and p for p in input_ids)
              and all(_is_int(t) for p in input_ids for t in p)):
            prompts, batch = [list(p) for p in input_ids], True
        else:
            raise RequestError("input_ids: expected a non-empty list of integers or a list of such lists")
    for p_index, prompt in enumerate(prompts):
        if not prompt:
            raise RequestError(f"text[{p_index}]: the prompt encodes to no tokens")
        bad = [t for t in prompt if not 0 <= t < engine.vocab_size]
        if bad:
            raise RequestError(f"input_ids: token id {bad[0]} outside the vocabulary [0, {engine.vocab_size})")

    raw_sampling = body.get("sampling_params")
    if isinstance(raw_sampling, list):
        if len(raw_sampling) != len(prompts):
            raise RequestError(f"sampling_params: {len(raw_sampling)} entries for {len(prompts)} prompts")
        samplings = [parse_sampling(s, default_seed, f"sampling_params[{k}].") for k, s in enumerate(raw_sampling)]
    else:
        samplings = [parse_sampling(raw_sampling, default_seed)] * len(prompts)

    refuse_unsupported_fields(body)
    n_prompts = len(prompts)
    return_logprob = per_prompt(body, "return_logprob", n_prompts, lambda v, where: _boolean(v, where), False)
    top_n = per_prompt(body, "top_logprobs_num", n_prompts, lambda v, where: _number({where: v}, where, "", int, 0, 0), 0)
    starts = per_prompt(body, "logprob_start_len", n_prompts,
                        lambda v, where: _number({where: v}, where, "", int, -1, -1), -1)
    if not isinstance(body.get("return_text_in_logprobs", False), bool):
        raise RequestError("return_text_in_logprobs: expected a boolean")

    raw_list = raw_sampling if isinstance(raw_sampling, list) else [raw_sampling] * len(prompts)
    limits.check_rows(engine, prompts, samplings,
                      max_given=[isinstance(r, dict) and r.get("max_new_tokens") is not None for r in raw_list])
    rows: list[Row] = []
    seeds = RowSeeds()
    for k, (prompt, sampling) in enumerate(zip(prompts, samplings)):
        start = starts[k]
        row_start = len(prompt) - 1 if start == -1 else start
        if row_start >= len(prompt):
            where = "logprob_start_len" + (f"[{k}]" if isinstance(body.get("logprob_start_len"), list) else "")
            raise RequestError(f"{where}: {start} must be smaller than the prompt length {len(prompt)}")
        for _ in range(sampling.n):
            rows.append(Row(input_ids=prompt, sampling=sampling, seed=seeds(sampling.sampling_seed, prompt),
                            return_logprob=return_logprob[k], top_logprobs_num=top_n[k], logprob_start_len=row_start))
    return rows, batch or len(rows) > 1


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
    if rid is not None and not (isinstance(rid, str) or (isinstance(rid, list) and all(isinstance(r, str) for r in rid))):
        raise RequestError(f"rid: expected a string or a list of strings, found {rid!r:.60}")


def format_generate(engine: Engine, body: dict, rows: list[Row], results: list[RowResult]) -> list[dict]:
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
            meta["input_token_logprobs"] = _triples(engine, list(zip(res.input_logprobs, res.input_ids_from_start)),
                                                    with_text)
            meta["output_token_logprobs"] = _triples(engine, list(zip(res.output_logprobs, res.output_ids)), with_text)
            if row.top_logprobs_num > 0:
                meta["input_top_logprobs"] = [None if top is None else _triples(engine, top, with_text)
                                              for top in res.input_top]
                meta["output_top_logprobs"] = [_triples(engine, top, with_text) for top in res.output_top]
        out.append({"text": res.text, "output_ids": res.output_ids, "meta_info": meta})
    return out


# ----------------------------------------------------------------------------- protocol: OpenAI


def _openai_sampling(body: dict, default_seed: int, max_default: int, defaults: dict | None = None) -> Sampling:
    raw: dict[str, Any] = dict(defaults or {})
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("n", "n"),
                         ("stop", "stop"), ("sampling_seed", "seed"), ("max_new_tokens", "max_tokens"),
                         ("stop_token_ids", "stop_token_ids")):
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


def _openai_logprob_args(body: dict, chat: bool) -> tuple[bool, int]:
    if chat:
        want = body.get("logprobs", False) or False
        if not isinstance(want, bool):
            raise RequestError(f"logprobs: expected a boolean, found {want!r:.60}")
        top = _number(body, "top_logprobs", "", int, 0, 0, 20)
        return want, top if want else 0
    value = body.get("logprobs")
    if value is None:
        return False, 0
    if not _is_int(value) or value < 0:
        raise RequestError(f"logprobs: expected a non-negative integer, found {value!r:.60}")
    return True, value


def _finish(res: RowResult) -> str:
    return "length" if res.finish_reason.get("type") == "length" else "stop"


def _oai_id(prefix: str, body: Any) -> str:
    return prefix + request_id(body, 0)[:24]


def parse_openai(engine: Engine, body: Any, default_seed: int, chat: bool) -> tuple[list[Row], list[int]]:
    """OpenAI body -> rows (prompt-major, n each) and the prompt length of each prompt."""
    if not isinstance(body, dict):
        raise RequestError("body: expected a JSON object")
    if chat:
        messages = body.get("messages")
        if not (isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages)):
            raise RequestError("messages: expected a non-empty list of {role, content} objects with string content")
        text = engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        limits.check_text_length(engine, text, "messages")
        prompts = [engine.encode(text)]
    else:
        prompt = body.get("prompt")
        limits.check_text_length(engine, prompt, "prompt")
        if isinstance(prompt, str):
            prompts = [engine.encode(prompt)]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = [engine.encode(p) for p in prompt]
        elif isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
            prompts = [list(prompt)]
        else:
            raise RequestError("prompt: expected a string, a list of strings or a list of token ids")
    if any(not p for p in prompts):
        raise RequestError("prompt: a prompt encodes to no tokens")
    longest = max(len(p) for p in prompts)
    max_default = max(1, engine.max_length - longest) if engine.max_length else 1024
    sampling = _openai_sampling(body, default_seed, max_default, engine.sampling_defaults if chat else None)
    want, top = _openai_logprob_args(body, chat)
    given = body.get("max_tokens") is not None or body.get("max_completion_tokens") is not None
    limits.check_rows(engine, prompts, [sampling] * len(prompts), openai=True, max_given=[given] * len(prompts))
    rows: list[Row] = []
    seeds = RowSeeds()
    for prompt in prompts:
        for _ in range(sampling.n):
            rows.append(Row(input_ids=prompt, sampling=sampling, seed=seeds(sampling.sampling_seed, prompt),
                            return_logprob=want, top_logprobs_num=top, logprob_start_len=len(prompt) - 1))
    return rows, [len(p) for p in prompts]


def format_openai(engine: Engine, body: dict, rows: list[Row], results: list[RowResult], prompt_lens: list[int],
                  chat: bool) -> dict:
    model = body.get("model") or engine.model_dir
    choices = []
    for index, (row, res) in enumerate(zip(rows, results)):
        logprobs = None
        if row.return_logprob:
            tokens = [engine.token_text(t) for t in res.output_ids]
            if chat:
                content = []
                for k, (tok, lp) in enumerate(zip(tokens, res.output_logprobs)):
                    entry = {"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8")), "top_logprobs": []}
                    if row.top_logprobs_num > 0:
                        entry["top_logprobs"] = [
                            {"token": engine.token_text(t), "logprob": v,
                             "bytes": list(engine.token_text(t).encode("utf-8"))} for v, t in res.output_top[k]]
                    content.append(entry)
                logprobs = {"content": content}
            else:
                offsets, pos = [], 0
                for tok in tokens:
                    offsets.append(pos)
                    pos += len(tok)
                logprobs = {"tokens": tokens, "token_logprobs": res.output_logprobs, "text_offset": offsets,
                            "top_logprobs": [{engine.token_text(t): v for v, t in top} for top in res.output_top]
                            if row.top_logprobs_num > 0 else None}
        if chat:
            choices.append({"index": index, "message": {"role": "assistant", "content": res.text},
                            "logprobs": logprobs, "finish_reason": _finish(res)})
        else:
            choices.append({"index": index, "text": res.text, "logprobs": logprobs, "finish_reason": _finish(res)})
    prompt_tokens = sum(prompt_lens)
    completion_tokens = sum(len(r.output_ids) for r in results)
    return {
        "id": _oai_id("chatcmpl-" if chat else "cmpl-", body),
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,  # fixed, not the clock: equal requests must give equal bytes
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


# ----------------------------------------------------------------------------- HTTP


def build_app(engine: Engine, seed: int = 0, request_limits: limits.Limits | None = None):
    import orjson
    from aiohttp import web

    engine.limits = request_limits or limits.Limits()
    worker = engine.worker = limits.Worker(engine.limits)
    worker.start()

    def dump(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False)

    def error(status: int, message: str):
        return web.json_response({"error": {"message": message, "code": status}}, status=status, dumps=dump)

    def fast_json(obj: Any):
        # orjson: scoring answers carry top-k triples for every position (megabytes per round);
        # the standard library's encoder spent more time on them than the model did.
        return web.Response(body=orjson.dumps(obj), content_type="application/json")

    async def read_body(request):
        return limits.parse_body(await request.read())

    async def in_worker(request, fn, *args, rows: int = 0):
        # the model thread also tokenizes: a huge prompt never blocks /health, and the tokenizer is
        # never used by two threads at once
        return await worker.run(request, fn, *args, rows=rows)

    async def health(_request):
        status, body = worker.health()
        return web.json_response(body, status=status, dumps=dump)

    async def model_info(_request):
        return web.json_response({"model_path": engine.model_dir, "tokenizer_path": engine.model_dir,
                                  "is_generation": True}, dumps=dump)

    async def models(_request):
        return web.json_response({"object": "list", "data": [
            {"id": engine.model_dir, "object": "model", "created": 0, "owned_by": "motab",
             "max_model_len": engine.max_length or None}]}, dumps=dump)

    async def generate(request):
        try:
            body = await read_body(request)
            rows, batch = await in_worker(request, parse_generate, engine, body, seed)
        except RequestError as exc:
            return error(400, str(exc))
        try:
            results = await in_worker(request, engine.run, rows, rows=len(rows))
        except Exception as exc:  # noqa: BLE001 - report any generation failure as a 500
            return error(500, f"generation failed: {type(exc).__name__}: {exc}")
        out = format_generate(engine, body, rows, results)
        return fast_json(out if batch else out[0])

    def openai_handler(chat: bool):
        async def handler(request):
            try:
                body = await read_body(request)
                if isinstance(body, dict) and body.get("stream"):
                    raise RequestError("stream: streaming is not supported by the embedded server")
                rows, prompt_lens = await in_worker(request, parse_openai, engine, body, seed, chat)
            except RequestError as exc:
                return error(400, str(exc))
            try:
                results = await in_worker(request, engine.run, rows, rows=len(rows))
            except Exception as exc:  # noqa: BLE001
                return error(500, f"generation failed: {type(exc).__name__}: {exc}")
            return fast_json(format_openai(engine, body, rows, results, prompt_lens, chat))
        return handler

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_get("/get_model_info", model_info)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/generate", generate)
    app.router.add_post("/v1/completions", openai_handler(chat=False))
    app.router.add_post("/v1/chat/completions", openai_handler(chat=True))

    async def on_cleanup(_app):
        worker.close()

    app.on_cleanup.append(on_cleanup)
    return app


async def _serve(engine: Engine, host: str, port: int, port_file: str | None, seed: int,
                 request_limits: limits.Limits | None = None) -> None:
    from aiohttp import web

    runner = web.AppRunner(build_app(engine, seed, request_limits), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    if port_file:
        Path(port_file).write_text(f"{bound}\n")
    print(f"listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="motab serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="HF checkpoint folder (model + tokenizer)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", default=None, help="write the bound port here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of requests that give none")
    parser.add_argument("--max-batch-size", type=int, default=64, help="rows per forward pass")
    parser.add_argument("--max-rows", type=int, default=limits.Limits.max_rows,
                        help="refuse requests of more rows (prompts x n) than this")
    parser.add_argument("--stall-timeout-s", type=float, default=limits.Limits.stall_s,
                        help="/health says dead after this long without a decode step")
    args = parser.parse_args(argv)
    if args.max_batch_size < 1:
        parser.error("--max-batch-size must be at least 1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.model).is_dir():
        print(f"motab serve: --model {args.model}: not a folder", file=sys.stderr)
        return 2
    engine = Engine(args.model, max_batch_size=args.max_batch_size)
    print(f"loaded {args.model} ({sum(p.numel() for p in engine.model.parameters())} parameters, "
          f"torch threads {torch.get_num_threads()})", flush=True)
    try:
        asyncio.run(_serve(engine, args.host, args.port, args.port_file, args.seed,
                           limits.Limits(max_rows=args.max_rows, stall_s=args.stall_timeout_s)))
    except KeyboardInterrupt:
        pass
    return 0
