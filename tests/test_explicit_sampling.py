"""Every synthesis and eval request states the sampling it means (temperature, top_p, top_k, the
token budget), so SGLang's model defaults (generation_config.json) never change what is sampled;
the embedded server's own defaults equal SGLang's for the same model."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from motab.serving.client import ServerClient, explicit_sampling
from motab.serving.protocol_openai import openai_sampling as _openai_sampling
from motab.serving.request import model_sampling_defaults, parse_sampling

EXPLICIT = {"temperature", "top_p", "top_k", "max_new_tokens", "min_p", "repetition_penalty"}


async def _recording_server(requests: list):
    """A /generate endpoint that records each body and answers one SGLang-shaped result per row."""
    from aiohttp import web

    async def generate(request):
        body = await request.json()
        requests.append(body)
        rows = body["sampling_params"] if isinstance(body["sampling_params"], list) else [body["sampling_params"]]
        out = [
            {
                "text": "\\boxed{1}",
                "output_ids": [5, 6],
                "meta_info": {
                    "finish_reason": {"type": "length", "length": 2},
                    "completion_tokens": 2,
                    "output_token_logprobs": [[-0.1, 5, None], [-0.2, 6, None]],
                    "input_token_logprobs": [[None, 1, None], [-0.3, 2, None]],
                    "input_top_logprobs": [None, [[-0.3, 2, None]]],
                    "output_top_logprobs": [[[-0.1, 5, None]], [[-0.2, 6, None]]],
                },
            }
            for _ in rows
        ]
        return web.json_response(out if isinstance(body["sampling_params"], list) else out[0])

    app = web.Application()
    app.router.add_post("/generate", generate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _sampling_entries(requests: list) -> list[dict]:
    entries = []
    for body in requests:
        params = body["sampling_params"]
        entries += params if isinstance(params, list) else [params]
    return entries


def test_synthesis_and_eval_requests_carry_every_sampling_key():
    from motab.evaluation.generate import generate_all
    from motab.synthesis.context import SynthContext, generate_ids, generate_ids_batch, score_continuation
    from motab.synthesis.teacher_only import TeacherOnlyParams, synthesize_chunk

    requests: list = []

    async def scenario():
        runner, url = await _recording_server(requests)
        try:
            async with ServerClient(url) as client:
                problems = [{"id": "a", "input": "1+0", "answer": "1"}]
                await synthesize_chunk(
                    SynthContext(client, None, None),
                    problems,
                    ["p"],
                    TeacherOnlyParams(num_responses=2, temperature=0.6, max_new_tokens=8, seed=0),
                )
                await generate_ids(client, [1, 2], 4, 0.6, seed=3)
                await generate_ids_batch(client, [[1, 2], [3]], [4, 4], 0.6, [1, 2])
                await score_continuation(client, [1], [2], top_k=1)  # teacher scoring: a greedy prefill
            args = SimpleNamespace(
                batch_problems=1, max_in_flight=1, n=2, seed=0, temperature=0.6, top_p=0.95, top_k=20, max_tokens=16
            )
            await generate_all(url, problems, ["p"], args)
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    entries = _sampling_entries(requests)
    assert len(entries) == 2 + 1 + 2 + 1 + 2
    for entry in entries:
        assert set(entry) >= EXPLICIT, entry
    # synthesis samples the full distribution at its temperature; eval sends its configured cut
    assert entries[0]["top_p"] == 1.0 and entries[0]["top_k"] == -1 and entries[0]["temperature"] == 0.6
    assert entries[-1]["top_p"] == 0.95 and entries[-1]["top_k"] == 20 and entries[-1]["max_new_tokens"] == 16


def test_a_request_without_temperature_or_budget_is_refused_before_sending():
    with pytest.raises(ValueError, match="temperature missing"):
        explicit_sampling({"max_new_tokens": 4})
    with pytest.raises(ValueError, match="max_tokens missing"):
        explicit_sampling({"temperature": 0.0}, "max_tokens")
    # a caller's own values win over the full-vocabulary fill
    assert explicit_sampling({"temperature": 1.0, "max_new_tokens": 0, "top_k": 5})["top_k"] == 5


def test_embedded_chat_defaults_equal_sglangs_for_the_model(tmp_path):
    """SGLang 0.5.9 (sglang/srt/entrypoints/openai/protocol.py, to_sampling_params; configs/
    model_config.py, get_default_sampling_params) fills a chat request's left-out temperature /
    top_p / top_k from GenerationConfig.from_pretrained(model).to_dict() under its transformers
    4.57.1, whose own defaults are 1.0 / 1.0 / 50; native /generate keeps 1.0 / 1.0 / -1."""
    # Qwen3-4B's generation_config.json (huggingface.co/Qwen/Qwen3-4B)
    (tmp_path / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": 151643,
                "do_sample": True,
                "eos_token_id": [151645, 151643],
                "pad_token_id": 151643,
                "temperature": 0.6,
                "top_k": 20,
                "top_p": 0.95,
                "transformers_version": "4.51.0",
            }
        )
    )
    assert model_sampling_defaults(tmp_path) == {"temperature": 0.6, "top_p": 0.95, "top_k": 20}
    left_out = _openai_sampling({"max_tokens": 5}, 0, 128, model_sampling_defaults(tmp_path))
    assert (left_out.temperature, left_out.top_p, left_out.top_k) == (0.6, 0.95, 20)
    stated = _openai_sampling(
        {"max_tokens": 5, "temperature": 1.0, "top_p": 1.0, "top_k": -1}, 0, 128, model_sampling_defaults(tmp_path)
    )
    assert (stated.temperature, stated.top_p, stated.top_k) == (1.0, 1.0, -1)
    # a generation_config.json without sampling keys (DeepSeek-R1-Distill sets only temperature and
    # top_p; the toy models none): transformers 4.57.1's top_k 50 fills in, as on SGLang
    (tmp_path / "generation_config.json").write_text(json.dumps({"temperature": 0.6, "top_p": 0.95}))
    assert model_sampling_defaults(tmp_path) == {"temperature": 0.6, "top_p": 0.95, "top_k": 50}
    # no generation_config.json: the protocol's own defaults, as SGLang's native /generate always
    assert model_sampling_defaults(tmp_path / "none") == {}
    bare = parse_sampling({}, 0)
    assert (bare.temperature, bare.top_p, bare.top_k, bare.max_new_tokens) == (1.0, 1.0, -1, 128)
