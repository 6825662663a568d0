"""The embedded server's protocols without a model: SGLang's /generate and OpenAI's bodies parsed into
rows and results formatted into responses (a Codec over the toy tokenizer), and the engine's sampler
on hand-made logits."""

from __future__ import annotations

import json

import pytest

from motab.serving.engine import Codec, sample_tokens, stop_string_hit
from motab.serving.limits import RequestError
from motab.serving.protocol_openai import format_openai, parse_openai
from motab.serving.protocol_sglang import format_generate, parse_generate
from motab.serving.request import Row, RowResult, Sampling

CONTEXT = 256


@pytest.fixture(scope="module")
def tokenizer(toy_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(toy_tokenizer_dir)


@pytest.fixture(scope="module")
def codec(tokenizer, toy_tokenizer_dir) -> Codec:
    return Codec(str(toy_tokenizer_dir), tokenizer, vocab_size=len(tokenizer), max_length=CONTEXT)


# ----------------------------------------------------------------------------- /generate


def test_rows_are_prompt_major_and_a_rows_seed_ignores_the_other_rows(codec):
    body = {"text": ["Compute 1 + 2.", "Compute 3 + 4."], "sampling_params": {"n": 2, "sampling_seed": 5}}
    rows, batch = parse_generate(codec, body, 0)
    assert batch and [r.input_ids for r in rows] == [codec.encode(t) for t in body["text"] for _ in range(2)]
    assert rows[0].seed != rows[1].seed  # the n copies of a prompt sample differently
    alone, batch = parse_generate(codec, {"text": "Compute 3 + 4.", "sampling_params": {"sampling_seed": 5}}, 0)
    assert not batch and alone[0].seed == rows[2].seed
    default, _ = parse_generate(codec, {"text": "Compute 3 + 4."}, 5)  # the server's --seed when none is given
    assert default[0].seed == rows[2].seed


def test_logprob_settings_once_or_per_prompt(codec):
    ids = [[5, 6, 7, 8], [9, 10, 11]]
    rows, _ = parse_generate(codec, {"input_ids": ids, "return_logprob": True}, 0)
    assert [(r.return_logprob, r.logprob_start_len, r.top_logprobs_num) for r in rows] == [(True, 3, 0), (True, 2, 0)]
    rows, _ = parse_generate(
        codec,
        {"input_ids": ids, "return_logprob": [True, False], "logprob_start_len": [0, None], "top_logprobs_num": [2, 0]},
        0,
    )
    assert [(r.return_logprob, r.logprob_start_len, r.top_logprobs_num) for r in rows] == [(True, 0, 2), (False, 2, 0)]
    with pytest.raises(RequestError, match=r"^logprob_start_len\[1\]: 3 must be smaller than the prompt length 3"):
        parse_generate(codec, {"input_ids": ids, "logprob_start_len": [0, 3]}, 0)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"text": "a", "input_ids": [5]}, "text/input_ids: give exactly one"),
        ({"input_ids": [5, 10**6]}, "input_ids: token id 1000000 outside the vocabulary"),
        ({"text": ["a", "b"], "sampling_params": [{}]}, "sampling_params: 1 entries for 2 prompts"),
        ({"text": ["a", "b"], "sampling_params": [{}, {"top_k": 0}]}, "sampling_params[1].top_k: 0 is not allowed"),
        ({"text": "a", "sampling_params": {"min_p": 0.1}}, "sampling_params.min_p: not supported"),
        ({"text": "a", "sampling_params": {"stop": 3}}, "sampling_params.stop: expected a string or a list"),
        ({"text": "a", "rid": 7}, "rid: expected a string or a list of strings"),
        ({"text": "a", "return_logprob": "yes"}, "return_logprob: expected a boolean"),
        (
            {"input_ids": [5] * CONTEXT},
            f"text/input_ids: The input ({CONTEXT} tokens) is longer than the model's context",
        ),
        (
            {"input_ids": [5] * 200, "sampling_params": {"max_new_tokens": 60}},
            "sampling_params.max_new_tokens: Requested",
        ),
    ],
)
def test_generate_refusals_name_the_field(codec, body, field):
    with pytest.raises(RequestError) as refused:
        parse_generate(codec, body, 0)
    assert str(refused.value).startswith(field)


def _result(ids: list[int], logprobs: list[float], finish: dict) -> RowResult:
    return RowResult(
        output_ids=ids,
        text="out",
        finish_reason=finish,
        output_logprobs=logprobs,
        output_top=[[(lp, t)] for lp, t in zip(logprobs, ids)],
        input_logprobs=[None, -1.5],
        input_top=[None, [(-1.5, 7)]],
        input_ids_from_start=[6, 7],
    )


def test_generate_response_echoes_rid_and_lays_out_logprobs_as_sglang(codec):
    sampling = Sampling()
    rows = [
        Row([5, 6, 7], sampling, seed=1, return_logprob=True, top_logprobs_num=1, logprob_start_len=1),
        Row([8, 9], sampling, seed=2),
    ]
    results = [
        _result([10, 11], [-0.5, -0.25], {"type": "stop", "matched": 11}),
        _result([12], [-0.1], {"type": "length", "length": 1}),
    ]
    body = {"input_ids": [[5, 6, 7], [8, 9]], "rid": ["first", "second"], "return_text_in_logprobs": True}
    first, second = format_generate(codec, body, rows, results)
    assert [first["meta_info"]["id"], second["meta_info"]["id"]] == ["first", "second"]
    meta = first["meta_info"]
    assert meta["input_token_logprobs"] == [[None, 6, codec.token_text(6)], [-1.5, 7, codec.token_text(7)]]
    assert meta["output_token_logprobs"][1] == [-0.25, 11, codec.token_text(11)]
    assert meta["input_top_logprobs"][0] is None and meta["output_top_logprobs"][0] == [
        [-0.5, 10, codec.token_text(10)]
    ]
    assert (meta["prompt_tokens"], meta["completion_tokens"], first["output_ids"]) == (3, 2, [10, 11])
    assert set(second["meta_info"]) == {"id", "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens"}
    # without a rid: an id from the body, equal for equal requests, one per row
    anonymous = {k: v for k, v in body.items() if k != "rid"}
    ids = [r["meta_info"]["id"] for r in format_generate(codec, anonymous, rows, results)]
    assert ids == [
        r["meta_info"]["id"] for r in format_generate(codec, json.loads(json.dumps(anonymous)), rows, results)
    ]
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)


# ----------------------------------------------------------------------------- OpenAI


def test_chat_uses_the_template_and_the_models_sampling_defaults(tokenizer, tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.6, "top_k": 20}))
    codec = Codec(str(tmp_path), tokenizer, vocab_size=len(tokenizer), max_length=CONTEXT)
    messages = [{"role": "user", "content": "Compute 2 + 2."}]
    rows, lens = parse_openai(codec, {"messages": messages, "n": 3}, 0, chat=True)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert len(rows) == 3 and rows[0].input_ids == codec.encode(text) and lens == [len(rows[0].input_ids)]
    s = rows[0].sampling
    assert (s.temperature, s.top_p, s.top_k) == (0.6, 1.0, 20)
    assert s.max_new_tokens == CONTEXT - lens[0]  # no max_tokens: up to the context
    given, _ = parse_openai(codec, {"messages": messages, "temperature": 0.2, "max_completion_tokens": 4}, 0, True)
    assert (given[0].sampling.temperature, given[0].sampling.top_k, given[0].sampling.max_new_tokens) == (0.2, 20, 4)
    plain, _ = parse_openai(codec, {"prompt": text}, 0, chat=False)  # completions keep the protocol's defaults
    assert (plain[0].sampling.temperature, plain[0].sampling.top_k) == (1.0, -1)


@pytest.mark.parametrize(
    "body,chat,field",
    [
        ({"prompt": "a", "seed": "s"}, False, "seed: expected int"),
        ({"prompt": "a", "max_tokens": -1}, False, "max_tokens: -1 out of range"),
        ({"prompt": {"a": 1}}, False, "prompt: expected a string"),
        ({"prompt": "a", "logprobs": -1}, False, "logprobs: expected a non-negative integer"),
        ({"messages": "hi"}, True, "messages: expected a non-empty list"),
        ({"messages": [{"role": "user", "content": "a"}], "logprobs": 3}, True, "logprobs: expected a boolean"),
        ({"messages": [{"role": "user", "content": "a"}], "logprobs": True, "top_logprobs": 21}, True, "top_logprobs:"),
        ({"prompt": [5] * 200, "max_tokens": 60}, False, "max_tokens: Requested token count"),
    ],
)
def test_openai_refusals_name_openais_field(codec, body, chat, field):
    with pytest.raises(RequestError) as refused:
        parse_openai(codec, body, 0, chat)
    assert str(refused.value).startswith(field)


def test_openai_responses_carry_logprobs_usage_and_a_fixed_id(codec):
    body = {"prompt": ["a", "b"], "logprobs": 1}
    rows, lens = parse_openai(codec, body, 0, chat=False)
    results = [
        _result([10, 11], [-0.5, -0.25], {"type": "stop", "matched": "x"}),
        _result([12], [-0.1], {"type": "length", "length": 1}),
    ]
    out = format_openai(codec, body, rows, results, lens, chat=False)
    assert out["id"].startswith("cmpl-") and out["created"] == 0 and out["model"] == codec.model_dir
    assert [c["finish_reason"] for c in out["choices"]] == ["stop", "length"]
    logprobs = out["choices"][0]["logprobs"]
    tokens = [codec.token_text(10), codec.token_text(11)]
    assert logprobs["tokens"] == tokens and logprobs["text_offset"] == [0, len(tokens[0])]
    assert logprobs["top_logprobs"] == [{tokens[0]: -0.5}, {tokens[1]: -0.25}]
    assert out["usage"] == {"prompt_tokens": sum(lens), "completion_tokens": 3, "total_tokens": sum(lens) + 3}
    assert format_openai(codec, body, rows, results, lens, chat=False) == out

    codec.served_model_name = "m"  # `motab serve --served-model-name m`
    chat_body = {"model": "m", "messages": [{"role": "user", "content": "a"}], "logprobs": True, "top_logprobs": 1}
    rows, lens = parse_openai(codec, chat_body, 0, chat=True)
    chat = format_openai(codec, chat_body, rows, results[:1], lens, chat=True)
    assert chat["id"].startswith("chatcmpl-") and chat["model"] == "m"
    choice = chat["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "out"}
    entry = choice["logprobs"]["content"][1]
    assert entry == {
        "token": tokens[1],
        "logprob": -0.25,
        "bytes": list(tokens[1].encode()),
        "top_logprobs": [{"token": tokens[1], "logprob": -0.25, "bytes": list(tokens[1].encode())}],
    }


# ----------------------------------------------------------------------------- the sampler


def _rows(*samplings: Sampling) -> list[Row]:
    return [Row([1], s, seed=0) for s in samplings]


def test_sampler_greedy_masks_and_seeded_draws():
    import torch

    logits = torch.tensor([[0.0, 3.0, 2.9, -1.0], [1.0, 0.0, 5.0, 4.9]])
    greedy = _rows(Sampling(temperature=0.0), Sampling(temperature=2.0, top_k=1))
    assert sample_tokens(torch, logits, greedy, [None, None], [True, True], pad_id=0) == [1, 2]
    assert sample_tokens(torch, logits, greedy, [None, None], [True, False], pad_id=9) == [1, 9]

    def draws(sampling: Sampling, seed: int, count: int = 200) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return [sample_tokens(torch, logits[:1], _rows(sampling), [gen], [True], 0)[0] for _ in range(count)]

    hot = Sampling(temperature=5.0)
    assert draws(hot, 3) == draws(hot, 3) and draws(hot, 3) != draws(hot, 4)
    assert set(draws(hot, 3)) == {0, 1, 2, 3}
    assert set(draws(Sampling(temperature=5.0, top_k=2), 3)) == {1, 2}  # only the two most likely
    assert set(draws(Sampling(temperature=5.0, top_p=0.3), 3)) == {1}  # the head alone reaches top_p


def test_the_earliest_stop_string_wins():
    assert stop_string_hit("a = 12.\n\nb", ["\n\n", "="]) == ("=", 2)
    assert stop_string_hit("abc", ["x"]) is None
