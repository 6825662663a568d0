"""HTTP helpers of the serving tests (standard library only; the server under test is the
`tiny_server` fixture of conftest.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def post(url: str, path: str, payload) -> tuple[int, bytes]:
    """POST a JSON payload (or raw bytes) to url + path: (status, body bytes), errors included."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_json(url: str, path: str, payload) -> tuple[int, dict | list]:
    """post(), the body parsed."""
    status, body = post(url, path, payload)
    return status, json.loads(body)


def post_ok(url: str, path: str, payload):
    """The parsed body of a 200 (fails the test on any other status)."""
    status, body = post(url, path, payload)
    assert status == 200, body
    return json.loads(body)


def refusal(url: str, path: str, payload) -> str:
    """The message of a 400 (fails the test on any other status)."""
    status, body = post(url, path, payload)
    assert status == 400, (status, body[:300])
    return json.loads(body)["error"]["message"]


def health(url: str) -> tuple[int, dict]:
    """GET /health: (status, body), 503 included."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
