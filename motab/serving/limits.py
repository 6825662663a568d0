"""What the embedded server refuses before doing any work, and the state of its model worker.

Refusals are HTTP 400s whose message starts with the field at fault:
- a body that is not JSON, nested deeper than `MAX_DEPTH`, or holding a non-finite number (Python's
  JSON reader accepts `NaN`, `Infinity` and `1e999`; a NaN temperature would sample garbage), or a
  string with a lone surrogate (`"\\ud800"` is valid JSON but no UTF-8 text: tokenizing or answering
  it failed with a plain-text 500);
- `n`, or the rows of a request (prompts x n), above `Limits.max_rows` (checked before any row is
  built: `n = 10**9` once raised a MemoryError that killed the event loop);
- a prompt that does not fit the model's context, or prompt + a requested max_new_tokens that does
  not, with SGLang's tokenizer-manager rule and wording (both refused when they reach the context
  length; a prompt text too long whatever its tokens is refused before it is tokenized).

`Worker` runs generation on the single model thread, tells `/health` whether it is idle, busy (and
since when, with how many requests waiting) or dead (the thread is gone, or no decode step for
`stall_s`), and stops a generation at its next decode step once its client has disconnected.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 64  # SGLang's requests nest 4 deep; the stdlib encoder recurses (request ids)
# a \\uD800-\\uDFFF escape in the raw body: only then are strings checked (a 300 MB body stays cheap)
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class RequestError(ValueError):
    """A bad request: answered with HTTP 400 and this message."""


class Cancelled(Exception):
    """The client of the running request disconnected; raised inside the worker at a decode step."""


@dataclass(frozen=True)
class Limits:
    max_rows: int = 16384  # rows (prompts x n) in one request
    stall_s: float = 600.0  # no decode step for this long while busy: /health says dead
    poll_s: float = 0.2  # how often a waiting handler checks that its client is still there


# ----------------------------------------------------------------------------- the body


def _path(parts: list) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_body(raw: bytes) -> Any:
    """Bytes -> JSON value, refusing invalid JSON, deep nesting and non-finite numbers."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise RequestError(f"body: JSON nested deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"body: not valid JSON ({exc})") from None
    check_values(body, strings=SURROGATE_ESCAPE.search(raw) is not None)
    return body


def _check_text(text: str, parts: list) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(
            f"{_path(parts)}: lone surrogate {text[exc.start]!r} at character {exc.start} is not valid Unicode text"
        ) from None


def check_values(body: Any, strings: bool = False) -> None:
    """Walk the value without recursion: nesting within MAX_DEPTH, every float finite, and (with
    `strings`) every string and key valid Unicode."""
    kinds = (float, dict, list, str) if strings else (float, dict, list)
    stack: list[tuple[Any, list]] = [(body, [])]
    while stack:
        value, parts = stack.pop()
        if isinstance(value, str):
            _check_text(value, parts)
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise RequestError(f"{_path(parts)}: {value} is not a finite number")
            continue
        if isinstance(value, (dict, list)):
            if len(parts) >= MAX_DEPTH:
                raise RequestError(f"{_path(parts)}: JSON nested deeper than {MAX_DEPTH} levels")
            if strings and isinstance(value, dict):
                for key in value:
                    _check_text(key, parts + [key])
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((child, parts + [key]) for key, child in items if isinstance(child, kinds))


# ----------------------------------------------------------------------------- rows and context


def check_rows(
    engine: Any, prompts: list[list[int]], samplings: list, openai: bool = False, max_given: list[bool] | None = None
) -> None:
    """Refuse before building rows: n or prompts x n above the limit, prompts that do not fit the
    context. `samplings[k]` is prompt k's Sampling; `openai` names OpenAI's fields in messages.
    As SGLang, prompt + max_new_tokens is checked only where the request gave max_new_tokens
    (`max_given[k]`); a default is cut at the context instead."""
    limits: Limits = getattr(engine, "limits", None) or Limits()
    n_field, max_field = ("n", "max_tokens") if openai else ("sampling_params.n", "sampling_params.max_new_tokens")
    prompt_field = "prompt" if openai else "text/input_ids"
    total = 0
    for sampling in samplings:
        if sampling.n > limits.max_rows:
            raise RequestError(
                f"{n_field}: {sampling.n} is above this server's limit of {limits.max_rows} rows "
                "per request (--max-rows)"
            )
        total += sampling.n
    if total > limits.max_rows:
        raise RequestError(
            f"{prompt_field}: {len(prompts)} prompts x {n_field} make {total} rows, above this "
            f"server's limit of {limits.max_rows} per request (--max-rows)"
        )
    context = int(getattr(engine, "max_length", 0) or 0)
    if not context:
        return
    for k, (prompt, sampling) in enumerate(zip(prompts, samplings)):
        where = f"{prompt_field}[{k}]" if len(prompts) > 1 else prompt_field
        if len(prompt) >= context:
            raise RequestError(
                f"{where}: The input ({len(prompt)} tokens) is longer than the model's context "
                f"length ({context} tokens)."
            )
        if (max_given is None or max_given[k]) and len(prompt) + sampling.max_new_tokens >= context:
            total_tokens = len(prompt) + sampling.max_new_tokens
            raise RequestError(
                f"{max_field}: Requested token count exceeds the model's maximum context length of {context} "
                f"tokens. You requested a total of {total_tokens} tokens: {len(prompt)} tokens from the input "
                f"messages and {sampling.max_new_tokens} tokens for the completion. Please reduce the number of "
                "tokens in the input messages or the completion to fit within the limit."
            )


# Normalizers (NFC, accent stripping) may shorten a text before it is split into tokens; a text
# longer than this many times (context x longest token) is refused without being tokenized.
NORMALIZE_SLACK = 4


def _max_token_chars(engine: Any) -> int:
    """The longest vocabulary entry in characters: its raw form is never shorter than its text
    (byte-level BPE spells each byte as one character, SentencePiece each character as itself)."""
    cached = getattr(engine, "_max_token_chars", None)
    if cached is None:
        cached = max((len(token) for token in engine.tokenizer.get_vocab()), default=1)
        engine._max_token_chars = cached
    return cached


def check_text_length(engine: Any, text: Any, field: str) -> None:
    """Refuse, before tokenizing it, a prompt text too long to fit the context whatever its tokens
    (tokenizing megabytes takes the model thread tens of seconds)."""
    context = int(getattr(engine, "max_length", 0) or 0)
    texts = [text] if isinstance(text, str) else text if isinstance(text, list) else []
    if not context:
        return
    per_token = _max_token_chars(engine) * NORMALIZE_SLACK
    for k, one in enumerate(texts):
        if isinstance(one, str) and len(one) >= context * per_token:
            where = f"{field}[{k}]" if isinstance(text, list) else field
            raise RequestError(
                f"{where}: The input ({len(one)} characters, so at least {len(one) // per_token} "
                f"tokens) is longer than the model's context length ({context} tokens)."
            )


# ----------------------------------------------------------------------------- the worker


class _Job:
    def __init__(self, rows: int):
        self.rows = rows
        self.cancelled = threading.Event()
        self.started: float | None = None


class Worker:
    """The one model thread: runs jobs in order, reports its state, cancels abandoned jobs."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.running: _Job | None = None
        self.waiting = 0
        self.last_step = time.monotonic()
        self.ready = threading.Event()
        self.queue: list[tuple[_Job, Callable[[], Any], asyncio.Future, asyncio.AbstractEventLoop]] = []
        self.wake = threading.Condition(self.lock)
        self.closed = False

    # -- the model thread
    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="motab-model", daemon=True)
        self.thread.start()

    def close(self) -> None:
        with self.wake:
            self.closed = True
            self.wake.notify_all()

    def _loop(self) -> None:
        while True:
            with self.wake:
                while not self.queue and not self.closed:
                    self.wake.wait()
                if self.closed:
                    return
                job, fn, future, loop = self.queue.pop(0)
                self.waiting -= 1
                self.running = job
                job.started = self.last_step = time.monotonic()
            try:
                if job.cancelled.is_set():
                    raise Cancelled()
                result, error = fn(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting handler
                result, error = None, exc
            finally:
                with self.lock:
                    self.running = None
            loop.call_soon_threadsafe(_settle, future, result, error)

    def tick(self) -> None:
        """Called by the engine at each decode step (on the model thread)."""
        self.last_step = time.monotonic()
        job = self.running
        if job is not None and job.cancelled.is_set():
            raise Cancelled()

    # -- the event loop
    async def run(self, request: Any, fn: Callable[..., Any], *args: Any, rows: int = 0) -> Any:
        """Run fn(*args) on the model thread; if the client disconnects meanwhile, stop it at its next
        decode step and cancel this handler (nobody is left to read the answer)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        job = _Job(rows)
        with self.wake:
            self.queue.append((job, lambda: fn(*args), future, loop))
            self.waiting += 1
            self.wake.notify()
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.limits.poll_s)
            if done:
                return future.result()
            if _gone(request):
                job.cancelled.set()
                future.add_done_callback(lambda f: f.exception())  # retrieved: no "never retrieved" warning
                raise asyncio.CancelledError()

    def health(self, now: float | None = None) -> tuple[int, dict]:
        """(HTTP status, body) for /health: 200 idle or busy, 503 dead."""
        now = time.monotonic() if now is None else now
        if self.thread is not None and not self.thread.is_alive():
            return 503, {"status": "dead", "reason": "the model worker thread has exited"}
        job = self.running
        if job is None:
            return 200, {"status": "idle", "waiting": self.waiting}
        quiet = now - self.last_step
        body = {
            "status": "busy",
            "running_s": round(now - (job.started or now), 3),
            "rows": job.rows,
            "waiting": self.waiting,
            "last_step_s": round(quiet, 3),
        }
        if quiet > self.limits.stall_s:
            return 503, body | {
                "status": "dead",
                "reason": f"no decode step for {quiet:.0f} s (limit {self.limits.stall_s:.0f} s)",
            }
        return 200, body


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _gone(request: Any) -> bool:
    transport = getattr(request, "transport", None)
    return transport is None or transport.is_closing()


def tick(engine: Any) -> None:
    """The engine's decode-step hook: a no-op outside the server."""
    worker = getattr(engine, "worker", None)
    if worker is not None:
        worker.tick()
