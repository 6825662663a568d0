"""Async HTTP client for an SGLang server or the embedded one (same protocol).

    async with ServerClient("http://127.0.0.1:30000") as client:
        resp = await client.generate({"text": prompt, "sampling_params": {...}})

At most `max_in_flight` requests are outstanding; connection errors, timeouts and 5xx answers are
retried with exponential backoff; 4xx answers are not (the request itself is wrong). The helpers at
the bottom read SGLang /generate responses without knowing which server produced them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Self

import orjson

# orjson parses and writes the large logprob answers several times faster than the json module.
JSON_HEADERS = {"Content-Type": "application/json"}


# --- explicit sampling (motab-gpupath) -------------------------------------------------------
# SGLang fills every sampling key a request leaves out from the model's generation_config.json
# (--sampling-defaults model, its default; Qwen3: top_p 0.95, top_k 20), so a request that sends
# only a temperature samples a truncated distribution on the cluster and the full one on the
# embedded server. Every request therefore states the whole sampling it means: temperature and the
# token budget from its caller (required), and where the caller gives none, full-vocabulary values.
FULL_VOCABULARY = {"top_p": 1.0, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}


def explicit_sampling(sampling: dict, budget_key: str = "max_new_tokens") -> dict:
    """`sampling` with the full-vocabulary values under the keys it leaves out; a request without a
    temperature or a token budget is a bug in its caller, so it raises instead of taking a default."""
    missing = [key for key in ("temperature", budget_key) if sampling.get(key) is None]
    if missing:
        raise ValueError(
            f"sampling {sampling!r:.200}: {', '.join(missing)} missing (every request states its sampling)"
        )
    return {**FULL_VOCABULARY, **sampling}


def explicit_payload(payload: dict) -> dict:
    """A /generate payload whose sampling_params (one dict, or one per prompt) are explicit."""
    params = payload.get("sampling_params")
    if isinstance(params, list):
        return {**payload, "sampling_params": [explicit_sampling(p) for p in params]}
    return {**payload, "sampling_params": explicit_sampling(params or {})}


# --- end explicit sampling


class ServerError(RuntimeError):
    """A request failed for good: names the server, the attempts and the last error."""


class RequestRejected(ServerError):
    """The server answered 4xx: retrying the same request cannot help."""


class ServerClient:
    def __init__(
        self,
        base_url: str,
        max_in_flight: int = 64,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 600.0,
    ):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, found {max_in_flight}")
        self.base_url = base_url.rstrip("/")
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._semaphore: asyncio.Semaphore | None = None
        self._session = None

    async def __aenter__(self) -> Self:
        import aiohttp

        self._semaphore = asyncio.Semaphore(self.max_in_flight)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=self.max_in_flight),
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, payload: Any = None) -> Any:
        import aiohttp

        if self._session is None or self._semaphore is None:
            raise RuntimeError("use ServerClient as `async with ServerClient(...) as client:`")
        url = self.base_url + path
        attempts = self.max_retries + 1
        last = "no attempt made"
        async with self._semaphore:
            for attempt in range(1, attempts + 1):
                try:
                    data = None if payload is None else orjson.dumps(payload)
                    async with self._session.request(method, url, data=data, headers=JSON_HEADERS) as resp:
                        body = await resp.read()
                        if resp.status < 400:
                            return orjson.loads(body) if body else None
                        text = body.decode("utf-8", errors="replace")
                        if resp.status < 500:
                            raise RequestRejected(f"{method} {url}: HTTP {resp.status}: {text[:2000]}")
                        last = f"HTTP {resp.status}: {text[:500]}"
                except RequestRejected:
                    raise
                except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if attempt < attempts:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise ServerError(f"{method} {url} failed after {attempts} attempts; last error: {last}")

    async def generate(self, payload: dict) -> dict | list:
        """POST /generate (SGLang native); a dict for one prompt, a list for a batch. The sampling
        is sent explicitly (explicit_payload)."""
        return await self._request("POST", "/generate", explicit_payload(payload))

    async def chat(self, payload: dict) -> dict:
        """POST /v1/chat/completions (OpenAI), with explicit sampling (SGLang takes top_k, min_p and
        repetition_penalty as extra fields)."""
        return await self._request("POST", "/v1/chat/completions", explicit_sampling(payload, "max_tokens"))

    async def completions(self, payload: dict) -> dict:
        """POST /v1/completions (OpenAI), with explicit sampling."""
        return await self._request("POST", "/v1/completions", explicit_sampling(payload, "max_tokens"))

    async def model_info(self) -> dict:
        return await self._request("GET", "/get_model_info")

    async def health(self) -> bool:
        """True when GET /health answers 200 (one try, no retries)."""
        import aiohttp

        if self._session is None:
            raise RuntimeError("use ServerClient as `async with ServerClient(...) as client:`")
        try:
            async with self._session.get(self.base_url + "/health", timeout=aiohttp.ClientTimeout(total=10)) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return False


# ----------------------------------------------------------------------------- response readers


def _meta(resp: dict, key: str) -> list:
    meta = resp.get("meta_info") or {}
    if key not in meta:
        raise KeyError(f"response has no meta_info.{key} (was return_logprob / top_logprobs_num set?)")
    return meta[key] or []


def output_logprobs(resp: dict) -> list[float]:
    """Logprob of each generated token."""
    return [float(lp) for lp, _tid, *_ in _meta(resp, "output_token_logprobs")]


def input_logprobs(resp: dict) -> list[float | None]:
    """Logprob of each prompt token from logprob_start_len on; the first is None (SGLang)."""
    return [None if lp is None else float(lp) for lp, _tid, *_ in _meta(resp, "input_token_logprobs")]


def _top(entries: list) -> list[dict[int, float] | None]:
    return [None if pos is None else {int(e[1]): float(e[0]) for e in pos} for pos in entries]


def input_top_logprobs(resp: dict) -> list[dict[int, float] | None]:
    """Per prompt position (from logprob_start_len): {token_id: logprob} of the top-k; first None."""
    return _top(_meta(resp, "input_top_logprobs"))


def output_top_logprobs(resp: dict) -> list[dict[int, float] | None]:
    """Per generated token: {token_id: logprob} of the top-k."""
    return _top(_meta(resp, "output_top_logprobs"))


def finish_reason(resp: dict) -> str:
    """ "stop" or "length" (or "abort")."""
    reason = (resp.get("meta_info") or {}).get("finish_reason") or {}
    return str(reason.get("type", "unknown"))


def completion_tokens(resp: dict) -> int:
    return int((resp.get("meta_info") or {}).get("completion_tokens", len(resp.get("output_ids") or [])))
