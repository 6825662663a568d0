"""The embedded server refuses what it cannot serve (a 400 naming the field), keeps answering /health
with the worker's real state, and stops a generation whose client has gone."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from serving_http import health, post, refusal

from motab.serving.limits import Limits, Worker

CONTEXT = 1024  # the tiny model's max_position_embeddings (motab.toy.model.ModelShape)


def test_prompt_and_completion_beyond_the_context_are_refused(tiny_server):
    message = refusal(
        tiny_server, "/generate", {"input_ids": [5] * (CONTEXT + 10), "sampling_params": {"max_new_tokens": 1}}
    )
    assert message.startswith("text/input_ids") and "longer than the model's context length (1024" in message
    message = refusal(tiny_server, "/generate", {"input_ids": [5] * 1000, "sampling_params": {"max_new_tokens": 100}})
    assert message.startswith("sampling_params.max_new_tokens") and "1100 tokens: 1000 tokens from the input" in message
    message = refusal(tiny_server, "/v1/completions", {"prompt": [5] * 1000, "max_tokens": 100})
    assert message.startswith("max_tokens")
    # what fits is served, scoring a long prompt included
    status, _ = post(
        tiny_server,
        "/generate",
        json.dumps({"input_ids": [5] * 1000, "sampling_params": {"max_new_tokens": 0}}).encode(),
    )
    assert status == 200
    # as in SGLang, a max_new_tokens the client did not give is not checked: generation stops at the context
    status, body = post(
        tiny_server,
        "/generate",
        json.dumps({"input_ids": [5] * 1000, "sampling_params": {"ignore_eos": True}}).encode(),
    )
    assert status == 200 and json.loads(body)["meta_info"]["completion_tokens"] <= CONTEXT - 1000
    status, body = post(tiny_server, "/v1/completions", json.dumps({"prompt": [5] * 1000}).encode())
    assert status == 200


def test_a_megabytes_prompt_is_refused_at_once(tiny_server):
    text = "Compute 12 + 7 and explain. " * (5_000_000 // 28)
    started = time.monotonic()
    request = urllib.request.Request(
        tiny_server + "/generate",
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 400 and time.monotonic() - started < 10
    message = json.loads(refused.value.read())["error"]["message"]
    assert message.startswith("text: The input (4999988 characters") and "context length (1024 tokens)" in message
    assert health(tiny_server)[0] == 200


def test_n_and_rows_above_the_limit_are_refused_and_the_server_lives(tiny_server):
    message = refusal(
        tiny_server, "/generate", {"input_ids": [5, 6], "sampling_params": {"max_new_tokens": 0, "n": 20000}}
    )
    assert message.startswith("sampling_params.n") and "--max-rows" in message
    message = refusal(
        tiny_server, "/generate", {"input_ids": [5, 6], "sampling_params": {"max_new_tokens": 1, "n": 10**9}}
    )
    assert message.startswith("sampling_params.n")
    message = refusal(
        tiny_server, "/generate", {"input_ids": [[5, 6]] * 200, "sampling_params": {"max_new_tokens": 0, "n": 100}}
    )
    assert message.startswith("text/input_ids") and "20000 rows" in message
    assert refusal(tiny_server, "/v1/completions", {"prompt": "a", "n": 10**9, "max_tokens": 1}).startswith("n:")
    assert health(tiny_server) == (200, {"status": "idle", "waiting": 0})
    status, _ = post(
        tiny_server, "/generate", json.dumps({"text": "a", "sampling_params": {"max_new_tokens": 2}}).encode()
    )
    assert status == 200


@pytest.mark.parametrize(
    "field,value", [("temperature", "NaN"), ("top_p", "NaN"), ("temperature", "Infinity"), ("max_new_tokens", "1e999")]
)
def test_non_finite_numbers_are_refused_naming_the_field(tiny_server, field, value):
    body = '{"text": "a", "sampling_params": {"' + field + '": ' + value + "}}"
    message = refusal(tiny_server, "/generate", body.encode())
    assert message.startswith(f"sampling_params.{field}:") and "not a finite number" in message


def test_absurd_nesting_is_a_400(tiny_server):
    deep = 200_000
    message = refusal(tiny_server, "/generate", ('{"text": ' + "[" * deep + "]" * deep + "}").encode())
    assert message.startswith(("body", "text")), message
    message = refusal(tiny_server, "/generate", ('{"text": "a", "x": ' + "[" * 500 + "]" * 500 + "}").encode())
    assert "nested deeper" in message
    assert health(tiny_server)[0] == 200


def _open_generation(url: str, payload: dict) -> socket.socket:
    """Send a request on a raw socket and leave it waiting for the answer (no read)."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    data = json.dumps(payload).encode()
    sock.sendall(
        b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def _wait_for(url: str, status: str, timeout_s: float) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, body = health(url)
        if body.get("status") == status or time.monotonic() > deadline:
            return code, body
        time.sleep(0.1)


def test_health_says_busy_and_a_disconnect_stops_the_generation(tiny_server):
    # 1024 rows x 900 tokens: over a minute of decoding for the tiny model on one thread
    long_job = {"input_ids": [5, 6, 7], "sampling_params": {"max_new_tokens": 900, "n": 1024, "ignore_eos": True}}
    sock = _open_generation(tiny_server, long_job)
    code, body = _wait_for(tiny_server, "busy", 30)
    assert code == 200 and body["status"] == "busy" and body["rows"] == 1024, body
    assert body["running_s"] >= 0 and body["last_step_s"] < 30
    sock.close()  # the client goes away
    code, body = _wait_for(tiny_server, "idle", 15)
    assert (code, body["status"]) == (200, "idle"), body
    started = time.monotonic()
    status, _ = post(
        tiny_server, "/generate", json.dumps({"text": "a", "sampling_params": {"max_new_tokens": 2}}).encode()
    )
    assert status == 200 and time.monotonic() - started < 10


def test_health_tells_a_stalled_or_exited_worker_from_a_busy_one():
    worker = Worker(Limits(stall_s=5.0))
    worker.start()
    release = threading.Event()
    reports = {}

    async def main():
        job = asyncio.ensure_future(worker.run(_Connected(), release.wait, rows=3))
        while worker.running is None:
            await asyncio.sleep(0.01)
        reports["busy"] = worker.health()
        reports["stalled"] = worker.health(now=time.monotonic() + 60)
        release.set()
        await job
        reports["idle"] = worker.health()

    asyncio.run(main())
    assert reports["busy"][0] == 200 and reports["busy"][1]["status"] == "busy" and reports["busy"][1]["rows"] == 3
    assert reports["stalled"][0] == 503 and "no decode step" in reports["stalled"][1]["reason"]
    assert reports["idle"] == (200, {"status": "idle", "waiting": 0})
    worker.close()
    worker.thread.join(5)
    assert worker.health()[0] == 503 and "exited" in worker.health()[1]["reason"]


class _Transport:
    @staticmethod
    def is_closing() -> bool:
        return False


class _Connected:
    """A request whose client stays connected (the worker only asks its transport)."""

    transport = _Transport()
