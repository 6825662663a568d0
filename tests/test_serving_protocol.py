"""SGLang /generate protocol details the embedded server honours or refuses by name: per-prompt
logprob settings, no_stop_trim, rid; stream, token_ids_logprob and min_new_tokens are a 400."""

from __future__ import annotations

import pytest
from serving_http import post_json


def post(url: str, payload: dict) -> tuple[int, dict]:
    return post_json(url, "/generate", payload)


def test_per_prompt_logprob_settings_equal_one_prompt_requests(tiny_server):
    texts = ["Compute 3 + 4.", "What is 12 times 12?"]
    sampling = {"temperature": 0.0, "max_new_tokens": 2}
    status, batch = post(
        tiny_server,
        {
            "text": texts,
            "sampling_params": sampling,
            "return_logprob": [True, True],
            "logprob_start_len": [2, 4],
            "top_logprobs_num": [0, 3],
        },
    )
    assert status == 200
    for text, start, top, got in zip(texts, [2, 4], [0, 3], batch):
        status, one = post(
            tiny_server,
            {
                "text": text,
                "sampling_params": sampling,
                "return_logprob": True,
                "logprob_start_len": start,
                "top_logprobs_num": top,
            },
        )
        assert status == 200
        assert [e[1] for e in got["meta_info"]["input_token_logprobs"]] == [
            e[1] for e in one["meta_info"]["input_token_logprobs"]
        ]
        assert got["meta_info"]["input_token_logprobs"][1][0] == pytest.approx(
            one["meta_info"]["input_token_logprobs"][1][0], abs=1e-5
        )
        assert ("input_top_logprobs" in got["meta_info"]) == (top > 0)
    status, mixed = post(tiny_server, {"text": texts, "sampling_params": sampling, "return_logprob": [True, False]})
    assert status == 200 and "output_token_logprobs" in mixed[0]["meta_info"]
    assert "output_token_logprobs" not in mixed[1]["meta_info"]


def test_per_prompt_list_of_the_wrong_length_is_refused(tiny_server):
    status, body = post(tiny_server, {"text": ["a b", "c d"], "logprob_start_len": [0], "return_logprob": True})
    assert status == 400 and "logprob_start_len" in body["error"]["message"]


def test_no_stop_trim_keeps_the_stop_string_and_rid_is_echoed(tiny_server):
    base = {
        "text": "Compute 3 + 4.",
        "rid": "row-7",
        "sampling_params": {"temperature": 0.0, "max_new_tokens": 16, "ignore_eos": True},
    }
    status, free = post(tiny_server, base)
    assert status == 200 and free["meta_info"]["id"] == "row-7"
    stop = free["text"][3:5]  # a stop string the greedy text contains
    assert stop
    trimmed = post(tiny_server, base | {"sampling_params": base["sampling_params"] | {"stop": [stop]}})[1]
    kept = post(
        tiny_server, base | {"sampling_params": base["sampling_params"] | {"stop": [stop], "no_stop_trim": True}}
    )[1]
    assert trimmed["meta_info"]["finish_reason"]["matched"] == stop
    assert kept["text"].startswith(trimmed["text"] + stop) and kept["output_ids"] == trimmed["output_ids"]


@pytest.mark.parametrize(
    "field,payload",
    [
        ("stream", {"stream": True}),
        ("token_ids_logprob", {"token_ids_logprob": [1, 2]}),
        ("min_new_tokens", {"sampling_params": {"min_new_tokens": 3}}),
    ],
)
def test_unsupported_fields_are_refused_by_name(tiny_server, field, payload):
    status, body = post(tiny_server, {"text": "Compute 3 + 4."} | payload)
    assert status == 400 and field in body["error"]["message"]
