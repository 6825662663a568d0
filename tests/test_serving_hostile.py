"""What a hostile client sends the embedded server: lone surrogates, roles it cannot render and model
names it does not serve get a 400 naming the field (as SGLang), never a 500 or a silent answer."""

from __future__ import annotations

import json
import urllib.request

from serving_http import post, post_ok, refusal

from motab.serving.limits import parse_body

LONE = '"\\ud800"'  # valid JSON, no valid Unicode text


def raw(body_with_placeholder: str) -> bytes:
    return body_with_placeholder.replace("LONE", LONE).encode()


def test_a_lone_surrogate_in_any_text_field_is_a_400_naming_the_field(tiny_server):
    cases = [
        ("/generate", '{"text": LONE, "sampling_params": {"max_new_tokens": 1}}', "text"),
        (
            "/generate",
            '{"text": "hi", "sampling_params": {"max_new_tokens": 1, "stop": [LONE]}}',
            "sampling_params.stop[0]",
        ),
        ("/v1/completions", '{"prompt": LONE, "max_tokens": 1}', "prompt"),
        (
            "/v1/chat/completions",
            '{"messages": [{"role": "user", "content": LONE}], "max_tokens": 1}',
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            '{"messages": [{"role": "user", "content": "a"}], "max_tokens": 1, "model": LONE}',
            "model",
        ),
    ]
    for path, body, field in cases:
        status, answer = post(tiny_server, path, raw(body))
        assert status == 400, (path, body, status, answer[:200])
        message = json.loads(answer)["error"]["message"]
        assert message.startswith(f"{field}: lone surrogate"), message


def test_a_surrogate_pair_is_text_and_is_served(tiny_server):
    status, _ = post(
        tiny_server, "/generate", b'{"text": "smile \\ud83d\\ude00", "sampling_params": {"max_new_tokens": 1}}'
    )
    assert status == 200


def test_a_lone_surrogate_in_a_key_is_named():
    try:
        parse_body(raw('{"sampling_params": {LONE: 1}}'))
    except ValueError as exc:
        assert str(exc).startswith("sampling_params.")
        assert "lone surrogate" in str(exc)
    else:
        raise AssertionError("a lone surrogate key was accepted")


def test_roles_the_server_cannot_render_are_refused(tiny_server):
    for role in ("robot", "tool"):
        body = {"messages": [{"role": "user", "content": "a"}, {"role": role, "content": "b"}], "max_tokens": 1}
        message = refusal(tiny_server, "/v1/chat/completions", body)
        assert message.startswith("messages[1].role:") and repr(role) in message
    body = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}], "max_tokens": 1}
    assert post_ok(tiny_server, "/v1/chat/completions", body)["choices"]


def test_a_model_the_server_does_not_serve_is_refused_as_sglang_does(tiny_server):
    with urllib.request.urlopen(tiny_server + "/v1/models", timeout=30) as resp:
        served = json.loads(resp.read())["data"][0]["id"]
    for path, body in (
        ("/v1/chat/completions", {"model": "gpt-4", "messages": [{"role": "user", "content": "a"}], "max_tokens": 1}),
        ("/v1/completions", {"model": "gpt-4", "prompt": "a", "max_tokens": 1}),
    ):
        message = refusal(tiny_server, path, body)
        # SGLang's words (test/srt/openai_server/validation/test_strict_model_validation.py)
        assert message.startswith("model: The model `gpt-4` does not exist")
        assert f"The served model name is `{served}`" in message
    answer = post_ok(tiny_server, "/v1/completions", {"model": served, "prompt": "a", "max_tokens": 1})
    assert answer["model"] == served
    assert post_ok(tiny_server, "/v1/completions", {"prompt": "a", "max_tokens": 1})["model"] == served
