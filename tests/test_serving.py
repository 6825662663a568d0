"""The embedded server, its client and launcher, and prompt building, as a user sees them."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from serving_http import post, post_ok

from motab.serving.launch import (
    SGLANG_SERVER_EXAMPLE,
    ServerStartError,
    render_command,
    serving,
)


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return tok, model


# ----------------------------------------------------------------------------- /generate


def test_health_and_model_info(tiny_server, tiny_model_dir):
    with urllib.request.urlopen(tiny_server + "/health", timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(tiny_server + "/get_model_info", timeout=10) as resp:
        info = json.loads(resp.read())
    assert info["model_path"] == str(tiny_model_dir) and info["is_generation"] is True


def test_generate_single_and_batch_shapes(tiny_server):
    one = post_ok(
        tiny_server, "/generate", {"text": "Compute 1 + 2.", "sampling_params": {"max_new_tokens": 5, "temperature": 0}}
    )
    assert isinstance(one, dict) and set(one) == {"text", "output_ids", "meta_info"}
    meta = one["meta_info"]
    assert {"id", "prompt_tokens", "completion_tokens", "finish_reason"} <= set(meta)
    assert meta["completion_tokens"] == len(one["output_ids"]) <= 5

    many = post_ok(
        tiny_server, "/generate", {"text": ["a", "Compute 3 - 1."], "sampling_params": {"max_new_tokens": 3, "n": 2}}
    )
    assert isinstance(many, list) and len(many) == 4  # 2 prompts x n=2, prompt-major
    assert many[0]["meta_info"]["prompt_tokens"] == many[1]["meta_info"]["prompt_tokens"]

    by_ids = post_ok(
        tiny_server, "/generate", {"input_ids": [[5, 6, 7], [8]], "sampling_params": {"max_new_tokens": 2}}
    )
    assert [r["meta_info"]["prompt_tokens"] for r in by_ids] == [3, 1]


def test_max_new_tokens_and_finish_reasons(tiny_server, reference):
    tok, _ = reference
    out = post_ok(
        tiny_server,
        "/generate",
        {"text": "Compute 1 + 2.", "sampling_params": {"max_new_tokens": 7, "temperature": 1.0, "ignore_eos": True}},
    )
    assert out["meta_info"]["completion_tokens"] == 7
    assert out["meta_info"]["finish_reason"] == {"type": "length", "length": 7}

    # Stop on a token id: pick the token greedy decoding emits second, so it must stop there.
    greedy = post_ok(
        tiny_server,
        "/generate",
        {"text": "x", "sampling_params": {"max_new_tokens": 4, "temperature": 0, "ignore_eos": True}},
    )
    second = greedy["output_ids"][1]
    first_hit = greedy["output_ids"].index(second)
    stopped = post_ok(
        tiny_server,
        "/generate",
        {"text": "x", "sampling_params": {"max_new_tokens": 4, "temperature": 0, "stop_token_ids": [second]}},
    )
    assert stopped["meta_info"]["finish_reason"] == {"type": "stop", "matched": second}
    assert stopped["output_ids"] == greedy["output_ids"][: first_hit + 1]

    # Stop on a string: it is cut from the text, like SGLang.
    stop_text = tok.decode([second])
    if stop_text.strip():
        cut = post_ok(
            tiny_server,
            "/generate",
            {"text": "x", "sampling_params": {"max_new_tokens": 4, "temperature": 0, "stop": [stop_text]}},
        )
        assert cut["meta_info"]["finish_reason"] == {"type": "stop", "matched": stop_text}
        assert stop_text not in cut["text"]


def test_same_request_same_bytes_and_seeds_differ(tiny_server):
    payload = {
        "text": ["Compute 4 + 4.", "Compute 9 - 2."],
        "sampling_params": {"max_new_tokens": 12, "temperature": 1.0, "sampling_seed": 7, "n": 2},
        "return_logprob": True,
        "top_logprobs_num": 3,
    }
    first, second = post(tiny_server, "/generate", payload), post(tiny_server, "/generate", payload)
    assert first == second and first[0] == 200
    texts = [r["text"] for r in json.loads(first[1])]
    assert texts[0] != texts[1]  # the n copies of a prompt sample differently

    other = dict(payload, sampling_params=dict(payload["sampling_params"], sampling_seed=8))
    assert [r["text"] for r in post_ok(tiny_server, "/generate", other)] != texts


def test_scoring_prefill_matches_transformers(tiny_server, reference):
    import torch

    tok, model = reference
    ids = tok(
        "<|im_start|>user\nCompute 12 + 30.<|im_end|>\n<|im_start|>assistant\n12 + 30 = 42.", add_special_tokens=False
    )["input_ids"]
    start = 5
    out = post_ok(
        tiny_server,
        "/generate",
        {
            "input_ids": ids,
            "sampling_params": {"max_new_tokens": 0},
            "return_logprob": True,
            "top_logprobs_num": 4,
            "logprob_start_len": start,
            "return_text_in_logprobs": True,
        },
    )
    meta = out["meta_info"]
    assert out["output_ids"] == [] and meta["completion_tokens"] == 0
    assert meta["output_token_logprobs"] == [] and meta["output_top_logprobs"] == []
    entries = meta["input_token_logprobs"]
    assert [e[1] for e in entries] == ids[start:]
    assert entries[0][0] is None and meta["input_top_logprobs"][0] is None  # SGLang pads the first
    assert all(isinstance(e[2], str) for e in entries)

    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    expected = [float(logp[j - 1, ids[j]]) for j in range(start + 1, len(ids))]
    assert [e[0] for e in entries[1:]] == pytest.approx(expected, abs=1e-4)

    for j, top in enumerate(meta["input_top_logprobs"][1:], start=start + 1):
        values = [t[0] for t in top]
        assert len(top) == 4 and values == sorted(values, reverse=True)
        assert values == pytest.approx(torch.topk(logp[j - 1], 4).values.tolist(), abs=1e-4)
        if ids[j] in [t[1] for t in top]:
            assert {t[1]: t[0] for t in top}[ids[j]] == pytest.approx(entries[j - start][0], abs=1e-6)


def test_output_logprobs_and_top_lists(tiny_server):
    out = post_ok(
        tiny_server,
        "/generate",
        {
            "text": "Compute 5 + 5.",
            "sampling_params": {"max_new_tokens": 6, "temperature": 1.0, "ignore_eos": True},
            "return_logprob": True,
            "top_logprobs_num": 5,
        },
    )
    meta = out["meta_info"]
    assert [e[1] for e in meta["output_token_logprobs"]] == out["output_ids"]
    assert len(meta["input_token_logprobs"]) == 1  # default logprob_start_len=-1: no prompt logprobs
    for (lp, tid, _), top in zip(meta["output_token_logprobs"], meta["output_top_logprobs"]):
        values = [t[0] for t in top]
        assert values == sorted(values, reverse=True)
        if tid in [t[1] for t in top]:
            assert lp == pytest.approx({t[1]: t[0] for t in top}[tid])
        else:
            assert lp <= values[-1]


def test_bad_requests_are_400_naming_the_field(tiny_server):
    status, body = post(tiny_server, "/generate", {"text": "x", "sampling_params": {"temperature": "hot"}})
    assert status == 400 and "temperature" in json.loads(body)["error"]["message"]
    status, body = post(tiny_server, "/generate", {"sampling_params": {}})
    assert status == 400 and "text" in json.loads(body)["error"]["message"]
    status, body = post(tiny_server, "/generate", {"input_ids": [1, 2], "return_logprob": True, "logprob_start_len": 9})
    assert status == 400 and "logprob_start_len" in json.loads(body)["error"]["message"]
    status, body = post(tiny_server, "/v1/chat/completions", {"messages": "hi"})
    assert status == 400 and "messages" in json.loads(body)["error"]["message"]


# ----------------------------------------------------------------------------- OpenAI


def test_openai_chat_and_completions(tiny_server, tiny_model_dir):
    chat = post_ok(
        tiny_server,
        "/v1/chat/completions",
        {
            "model": str(tiny_model_dir),  # the served name: the --model path, as SGLang
            "messages": [{"role": "user", "content": "Compute 2 + 2."}],
            "max_tokens": 4,
            "n": 2,
            "temperature": 0.7,
            "seed": 1,
            "logprobs": True,
            "top_logprobs": 2,
        },
    )
    assert chat["object"] == "chat.completion" and len(chat["choices"]) == 2
    choice = chat["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    assert len(choice["logprobs"]["content"][0]["top_logprobs"]) == 2
    usage = chat["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    comp = post_ok(tiny_server, "/v1/completions", {"prompt": ["a", "b"], "max_tokens": 3, "temperature": 0})
    assert comp["object"] == "text_completion" and [c["index"] for c in comp["choices"]] == [0, 1]


# ----------------------------------------------------------------------------- client


async def _flaky_app(fail_times: int):
    from aiohttp import web

    calls = {"n": 0}

    async def generate(request):
        calls["n"] += 1
        if calls["n"] <= fail_times:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"text": "ok", "echo": await request.json()})

    app = web.Application()
    app.router.add_post("/generate", generate)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}", calls


SAMPLING = {"temperature": 0.6, "max_new_tokens": 8}


def test_client_retries_5xx_then_succeeds():
    from motab.serving.client import ServerClient

    async def scenario():
        runner, url, calls = await _flaky_app(fail_times=2)
        try:
            async with ServerClient(url, max_retries=3, backoff_s=0.01) as client:
                return await client.generate({"text": "hi", "sampling_params": SAMPLING}), calls["n"]
        finally:
            await runner.cleanup()

    resp, calls = asyncio.run(scenario())
    # the sampling reaches the server explicit: full-vocabulary values where the caller gave none
    assert resp["text"] == "ok" and calls == 3
    assert resp["echo"] == {
        "text": "hi",
        "sampling_params": {
            "temperature": 0.6,
            "max_new_tokens": 8,
            "top_p": 1.0,
            "top_k": -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
        },
    }


def test_client_gives_up_naming_the_server():
    from motab.serving.client import ServerClient, ServerError

    async def scenario():
        runner, url, calls = await _flaky_app(fail_times=10**6)
        try:
            async with ServerClient(url, max_retries=2, backoff_s=0.01) as client:
                with pytest.raises(ServerError) as info:
                    await client.generate({"text": "hi", "sampling_params": SAMPLING})
            return url, str(info.value), calls["n"]
        finally:
            await runner.cleanup()

    url, message, calls = asyncio.run(scenario())
    assert url in message and "3 attempts" in message and "503" in message and calls == 3


def test_client_does_not_retry_4xx(tiny_server):
    from motab.serving.client import RequestRejected, ServerClient

    async def scenario():
        async with ServerClient(tiny_server, backoff_s=0.01) as client:
            assert await client.health()
            with pytest.raises(RequestRejected, match="temperature"):
                await client.generate({"text": "x", "sampling_params": {"temperature": "hot", "max_new_tokens": 4}})

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- launcher


def test_render_command_sglang_example():
    argv = render_command(
        SGLANG_SERVER_EXAMPLE, python="/usr/bin/python3", model="/models/Qwen 7B", host="0.0.0.0", port=30000
    )
    assert argv == [
        "python",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "/models/Qwen 7B",
        "--host",
        "0.0.0.0",
        "--port",
        "30000",
        "--tp-size",
        "4",
        "--dp-size",
        "1",
        "--enable-deterministic-inference",
    ]
    with pytest.raises(ValueError, match="gpus"):
        render_command("x --n {gpus}", model="m")


FAKE_SERVER = """
import http.server, os, subprocess, sys
port, pid_file = int(sys.argv[1]), sys.argv[2]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(pid_file, "w") as handle:
    handle.write(f"{os.getpid()} {child.pid}")

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_launcher_kills_the_process_group_on_exception(tmp_path):
    script, pid_file = tmp_path / "fake_server.py", tmp_path / "pids"
    script.write_text(FAKE_SERVER)
    with (
        pytest.raises(RuntimeError, match="boom"),
        serving(
            f"{{python}} {script} {{port}} {pid_file}", "unused", tmp_path / "server.log", startup_timeout_s=60
        ) as url,
    ):
        with urllib.request.urlopen(url + "/health", timeout=10) as resp:
            assert resp.status == 200
        pids = [int(x) for x in pid_file.read_text().split()]
        assert all(_alive(pid) for pid in pids)
        raise RuntimeError("boom")
    deadline = time.monotonic() + 5  # an orphaned child is reaped by init a moment later
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "server or its child survived the with block"
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/health", timeout=5)


def test_launcher_reports_a_dead_server(tmp_path):
    log = tmp_path / "server.log"
    with (
        pytest.raises(ServerStartError, match="exited with code"),
        serving(
            "{python} -c 'import sys; print(\"no such model {model}\"); sys.exit(3)'", "m", log, startup_timeout_s=30
        ),
    ):
        pass
    assert "no such model m" in log.read_text()


# ----------------------------------------------------------------------------- prompts


def test_build_prompt_uses_the_models_template(tiny_model_dir):
    from transformers import AutoTokenizer

    from motab.chat import build_prompt
    from motab.toy.tokenizer import chat_text

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert build_prompt(tok, "Compute 1 + 1.") == chat_text("Compute 1 + 1.")
    assert build_prompt(tok, "q", close_think=True) == chat_text("q")  # nothing to close
    with_system = build_prompt(tok, "q", system="Be brief.")
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_build_prompt_closes_an_open_think(tiny_model_dir):
    from transformers import AutoTokenizer

    from motab.chat import build_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>"
        "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
        "{% else %}<think>\n{% endif %}{% endif %}"
    )
    assert build_prompt(tok, "q") == "<user>q<assistant><think>\n"
    assert build_prompt(tok, "q", close_think=True) == "<user>q<assistant><think>\n\n</think>\n\n"
    # A template that honours enable_thinking=False is left as it renders.
    assert (
        build_prompt(tok, "q", enable_thinking=False, close_think=True) == "<user>q<assistant><think>\n\n</think>\n\n"
    )
    assert build_prompt(tok, "q", enable_thinking=True) == "<user>q<assistant><think>\n"


def test_batched_greedy_equals_one_by_one(tiny_server):
    """Left padding, the KV cache and dropping finished rows do not change what a row generates."""
    prompts = ["Compute 12 + 30 - 7.", "x", "Compute 3 + 3."]
    alone = [
        post_ok(
            tiny_server,
            "/generate",
            {
                "text": p,
                "sampling_params": {"max_new_tokens": 10, "temperature": 0, "ignore_eos": True},
                "return_logprob": True,
            },
        )
        for p in prompts
    ]
    early = alone[1]["output_ids"][2]  # row 1 stops early, so the batch shrinks mid-way
    params = [
        {"max_new_tokens": 10, "temperature": 0, "ignore_eos": True},
        {"max_new_tokens": 10, "temperature": 0, "stop_token_ids": [early]},
        {"max_new_tokens": 10, "temperature": 0, "ignore_eos": True},
    ]
    batch = post_ok(tiny_server, "/generate", {"text": prompts, "sampling_params": params, "return_logprob": True})
    assert batch[0]["output_ids"] == alone[0]["output_ids"]
    assert batch[2]["output_ids"] == alone[2]["output_ids"]
    cut = alone[1]["output_ids"].index(early) + 1
    assert batch[1]["output_ids"] == alone[1]["output_ids"][:cut]
    for got, want in ((batch[0], alone[0]), (batch[2], alone[2])):
        assert output_lps(got) == pytest.approx(output_lps(want), abs=1e-4)


def output_lps(resp: dict) -> list[float]:
    from motab.serving.client import output_logprobs

    return output_logprobs(resp)
