"""A parsed request, shared by both protocols: its rows, their sampling and their seeds.

A row is one sequence to generate (a prompt, repeated `n` times, gives n rows, prompt-major).
Sampling fields follow SGLang's `sampling_params`; what this server does not implement is refused
by name (a 400), never ignored. Seeds make a row's draws independent of which other rows share its
request (server.py's docstring says how).
"""

from __future__ import annotations

import hashlib
import json
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motab.serving.limits import RequestError


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
    no_stop_trim: bool = False  # SGLang: keep a matched stop string (or stop token's text) in `text`


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


def is_int(x: Any) -> bool:
    """An int that is not a bool (JSON's true is not a token id)."""
    return isinstance(x, int) and not isinstance(x, bool)


def number(
    d: dict, key: str, where: str, kind: type, default: Any, low: float | None = None, high: float | None = None
) -> Any:
    """d[key] as `kind` within [low, high], `default` when absent or null; a 400 naming the field."""
    value = d.get(key, default)
    if value is None:
        return default
    ok = is_int(value) if kind is int else (isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        raise RequestError(f"{where}{key}: expected {kind.__name__}, found {type(value).__name__} {value!r:.60}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise RequestError(f"{where}{key}: {value!r} out of range [{low}, {high}]")
    return kind(value)


def parse_sampling(raw: Any, default_seed: int, where: str = "sampling_params.") -> Sampling:
    """SGLang `sampling_params` -> Sampling; `where` prefixes the field named in a refusal."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RequestError(f"{where.rstrip('.')}: expected an object, found {type(raw).__name__}")
    s = Sampling()
    s.temperature = number(raw, "temperature", where, float, 1.0, 0.0)
    s.top_p = number(raw, "top_p", where, float, 1.0, 1e-9, 1.0)
    s.top_k = number(raw, "top_k", where, int, -1, -1)
    if s.top_k == 0:
        raise RequestError(f"{where}top_k: 0 is not allowed (use -1 for no limit)")
    s.max_new_tokens = number(raw, "max_new_tokens", where, int, 128, 0)
    s.n = number(raw, "n", where, int, 1, 1)
    s.sampling_seed = number(raw, "sampling_seed", where, int, default_seed)
    s.stop = _stop_strings(raw.get("stop"), where)
    ids = raw.get("stop_token_ids")
    if ids is None:
        s.stop_token_ids = []
    elif isinstance(ids, list) and all(is_int(x) for x in ids):
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


def _stop_strings(stop: Any, where: str) -> list[str]:
    """`stop` as a list of non-empty strings (one string or a list of them)."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list) and all(isinstance(x, str) for x in stop):
        return [x for x in stop if x]
    raise RequestError(f"{where}stop: expected a string or a list of strings, found {stop!r:.60}")


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
