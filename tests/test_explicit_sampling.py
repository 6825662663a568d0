"""Every synthesis and eval request states the sampling it means (temperature, top_p, top_k, the
token budget), so SGLang's model defaults (generation_config.json) never change what is sampled;
the embedded server's own defaults equal SGLang's for the same model."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from motab.serving.client import ServerClient, explicit_sampling
from motab.serving.server import model_sampling_defaults, parse_sampling, with_defaults

EXPLICIT = {"temperature", "top_p", "top_k", "max_new_tokens", "min_p", "repetition_penalty"}


async def _recording_server(requests: list):
    """A /generate endpoint that records each body and answers one SGLang-shaped result per row."""
    from aiohttp import web

    async def generate(request):
        body = await request.json()
        requests.append(body)
        rows = body["sampling_params"] if isinstance(body["sampling_params"], list) else [body["sampling_params"]]
        out = [{"text": "\\boxed{1}", "output_ids": [5, 6],
                "meta_info": {"finish_reason": {"type": "length", "length": 2}, "completion_tokens": 2,
                              "output_token_logprobs": [[-0.1, 5, None], [-0.2, 6, None]],
                              "input_token_logprobs": [[None, 1, None], [-0.3, 2, None]],
                              "input_top_logprobs": [None, [[-0.3, 2, None]]],
                              "output_top_logprobs": [[[-0.1, 5, None]], [[-0.2, 6, None]]]}}
               for _ in rows]
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
    from motab.synthesis.context import generate_ids, generate_ids_batch, score_continuation
    from motab.synthesis.teacher_only import TeacherOnlyParams, synthesize_chunk

    requests: list = []

    async def scenario():
        runner, url = await _recording_server(requests)
        try:
            async with ServerClient(url) as client:
                problems = [{"id": "a", "input": "1+0", "answer": "1"}]
                await synthesize_chunk(client, problems, ["p"], TeacherOnlyParams(
                    num_responses=2, temperature=0.6, max_new_tokens=8, seed=0))
                await generate_ids(client, [1, 2], 4, 0.6, seed=3)
                await generate_ids_batch(client, [[1, 2], [3]], [4, 4], 0.6, [1, 2])
                await score_continuation(client, [1], [2], top_k=1)  # teacher scoring: a greedy prefill
            args = SimpleNamespace(batch_problems=1, max_in_flight=1, n=2, seed=0, temperature=0.6, top_p=0.95,
                                   top_k=20, max_tokens=16)
            await generate_all(url, problems, ["p"], args)
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    entries = _sampling_entries(requests)
    assert len(entries) == 2 + 1 + 2 + 1 + 2
    for entry in entries:
        assert EXPLICIT <= set(entry), entry
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


def test_embedded_defaults_come_from_the_models_generation_config(tmp_path):
    # Qwen3-4B's generation_config.json (huggingface.co/Qwen/Qwen3-4B): SGLang's --sampling-defaults
    # model takes temperature, top_p, top_k (and min_p, repetition_penalty) from it
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
         "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"}))
    defaults = model_sampling_defaults(tmp_path)
    assert defaults == {"temperature": 0.6, "top_p": 0.95, "top_k": 20}
    left_out = parse_sampling(with_defaults({"max_new_tokens": 5}, defaults), 0)
    assert (left_out.temperature, left_out.top_p, left_out.top_k) == (0.6, 0.95, 20)
    stated = parse_sampling(with_defaults({"max_new_tokens": 5, "temperature": 1.0, "top_p": 1.0, "top_k": -1},
                                          defaults), 0)
    assert (stated.temperature, stated.top_p, stated.top_k) == (1.0, 1.0, -1)
    # no generation_config.json (the toy models): the protocol's own defaults, as SGLang
    assert model_sampling_defaults(tmp_path / "none") == {}
    bare = parse_sampling(with_defaults({}, {}), 0)
    assert (bare.temperature, bare.top_p, bare.top_k, bare.max_new_tokens) == (1.0, 1.0, -1, 128)
