"""Evaluation generation against EvalScope's own client and `llamafactory-cli api`: tokens per second.

    python perf/peer_eval_generate.py [--problems 16 --max-tokens 32 --runs 3 --hidden 64 --layers 2
                                             --concurrency 4 --llamafactory]

One random Qwen3-architecture model (the toy tokenizer, --hidden x --layers) and the first --problems
MATH-500 problems, sampled once each at temperature 1 to --max-tokens tokens (a random model seldom
samples eos, so every response is about --max-tokens long on every side).
- ours: `motab eval-generate --server-url` against the embedded server (`python -m motab serve`,
  started once): SGLang's native /generate, --batch-problems 16 problems a request, --concurrency
  requests in flight;
- peer EvalScope: EvalScope's own client (`evalscope.run_task`, eval_type openai_api, math_500 from a
  local copy of the same problems, eval_batch_size --concurrency) against the same server's
  /v1/chat/completions: one request per problem; its run also reviews (grades) the answers;
- peer LLaMA-Factory (--llamafactory): `llamafactory-cli api` (LLaMA-Factory's OpenAI server,
  huggingface backend, template "default", its MAX_CONCURRENT 1) on the same model, driven by the same
  EvalScope client, and by a thin OpenAI chat client (aiohttp, one request per problem, --concurrency in
  flight, next to no client cost): a server against a server, the client held fixed.
Each client run is a fresh process that runs its client twice: cold (its lazy imports, transformers for
ours and EvalScope's benchmark modules, inside the clock) and then warm, the figure compared; runs
interleave (ours, EvalScope[, EvalScope->LLaMA-Factory], ...). Tokens: the completion tokens each client
recorded (warm pass). Printed: median warm seconds, tokens/s and cold seconds per row, and the ratios
ours/peer of warm tokens/s (above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tiny_models import build_tiny_models

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "math500" / "test.jsonl"


def build(root: Path, problems: int, hidden: int, layers: int, data: Path) -> None:
    """Model under root/model, native problems root/problems.jsonl, EvalScope's copy root/math500/test.jsonl."""
    from motab.data.benchmarks import load_benchmark
    from motab.jsonio import write_jsonl

    build_tiny_models(root, {"model": 0}, hidden, layers)
    lines = data.read_text(encoding="utf-8").splitlines()[:problems]
    (root / "math500").mkdir()
    (root / "math500" / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_jsonl(root / "problems.jsonl", load_benchmark(root / "math500" / "test.jsonl", "math500", "math500"))


def run_ours(root: Path, cfg: dict, tag: str) -> tuple[float, int]:
    from motab.evaluation import generate

    out = root / f"ours-{os.getpid()}-{tag}.jsonl"
    start = time.perf_counter()
    generate.main(
        [
            "--model",
            str(root / "model"),
            "--problems",
            str(root / "problems.jsonl"),
            "--output",
            str(out),
            "--server-url",
            cfg["url"],
            "--n",
            "1",
            "--temperature",
            "1.0",
            "--max-tokens",
            str(cfg["max_tokens"]),
            "--seed",
            "0",
            "--max-in-flight",
            str(cfg["concurrency"]),
        ]
    )
    seconds = time.perf_counter() - start
    tokens = sum(sum(json.loads(line)["completion_tokens"]) for line in out.read_text().splitlines())
    return seconds, tokens


def run_evalscope(root: Path, cfg: dict, tag: str) -> tuple[float, int]:
    from evalscope import TaskConfig, run_task

    from motab.evaluation.evalscope_engine import (
        read_reviews,
        review_files,
        served_model,
        task_config_dict,
    )

    work = root / f"evalscope-{os.getpid()}-{tag}"
    config = task_config_dict(
        cfg["url"],
        "math_500",
        str(root / "math500"),
        str(work),
        temperature=1.0,
        top_p=1.0,
        max_tokens=cfg["max_tokens"],
        seed=0,
        limit=cfg["problems"],
        batch_size=cfg["concurrency"],
        model=served_model(cfg["url"]),
    )
    start = time.perf_counter()
    run_task(task_cfg=TaskConfig(**config))
    seconds = time.perf_counter() - start
    return seconds, sum(r["tokens"] for r in read_reviews(review_files(work, "math_500")))


def run_openai(root: Path, cfg: dict, tag: str) -> tuple[float, int]:
    """A thin OpenAI chat client (aiohttp, --concurrency requests in flight, one per problem): it costs
    next to nothing itself, so it compares servers."""
    import asyncio

    import aiohttp

    problems = [json.loads(line)["input"] for line in (root / "problems.jsonl").read_text().splitlines()]

    async def ask(session, gate, i: int, problem: str) -> int:
        body = {
            "model": str(root / "model"),  # the served name (the server's --model)
            "messages": [{"role": "user", "content": problem}],
            "max_tokens": cfg["max_tokens"],
            "temperature": 1.0,
            "top_p": 1.0,
            "seed": i,
        }
        async with gate, session.post(cfg["url"] + "/v1/chat/completions", json=body) as resp:
            resp.raise_for_status()
            return (await resp.json())["usage"]["completion_tokens"]

    async def every() -> int:
        gate = asyncio.Semaphore(cfg["concurrency"])
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
            return sum(await asyncio.gather(*(ask(session, gate, i, q) for i, q in enumerate(problems))))

    start = time.perf_counter()
    tokens = asyncio.run(every())
    return time.perf_counter() - start, tokens


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); log {log}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"server at {url} not ready after {timeout_s} s; log {log}")


def llamafactory(root: Path, threads: int) -> tuple[subprocess.Popen, str]:
    """`llamafactory-cli api` on the model (huggingface backend, CPU); returns (process, base URL)."""
    from motab.serving.launch import free_port

    cli = shutil.which("llamafactory-cli") or str(Path(sys.executable).parent / "llamafactory-cli")
    port = free_port()
    env = {
        **os.environ,
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": str(threads),
        "DISABLE_VERSION_CHECK": "1",
    }
    log = root / "llamafactory.log"
    with open(log, "wb") as out:  # the child keeps its own copy of the file descriptor
        proc = subprocess.Popen(
            [
                cli,
                "api",
                "--model_name_or_path",
                str(root / "model"),
                "--template",
                "default",
                "--infer_backend",
                "huggingface",
                "--trust_remote_code",
                "true",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, 300, log)
    return proc, url


def child(root: Path, cfg: dict) -> None:
    """Two passes in one process: cold (the client's lazy imports inside the clock), then warm."""
    run = {"ours": run_ours, "evalscope": run_evalscope, "openai": run_openai}[cfg["side"]]
    (cold, _), (seconds, tokens) = run(root, cfg, "cold"), run(root, cfg, "warm")
    print(json.dumps({"seconds": seconds, "tokens": tokens, "cold": cold}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--problems", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (both clients)")
    p.add_argument("--llamafactory", action="store_true", help="also serve with `llamafactory-cli api`")
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per client process")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), json.loads(args.child[1]))
        return 0
    from motab.serving.launch import LOCAL_SERVER, serving, stop_process_group

    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.problems, args.hidden, args.layers, Path(args.data))
        rows = [("ours eval-generate -> motab serve", "ours"), ("peer EvalScope -> motab serve", "evalscope")]
        urls, lf = {}, None
        with serving(LOCAL_SERVER + f" --threads {args.threads}", str(root / "model"), root / "serve.log") as url:
            urls["ours"] = urls["evalscope"] = url
            if args.llamafactory:
                lf, urls["llamafactory"] = llamafactory(root, args.threads)
                urls["openai-llamafactory"] = urls["llamafactory"]
                urls["openai-motab"] = url
                rows += [
                    ("peer EvalScope -> llamafactory-cli api", "llamafactory"),
                    ("thin OpenAI client -> motab serve", "openai-motab"),
                    ("thin OpenAI client -> llamafactory-cli api", "openai-llamafactory"),
                ]
            print(
                f"eval generation: {args.problems} MATH-500 problems x 1 sample x {args.max_tokens} max tokens, "
                f"model hidden {args.hidden} x {args.layers} layers (vocab 300), servers on {args.threads} "
                f"thread(s), {args.concurrency} requests in flight; median of {args.runs} interleaved runs; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            got: dict[str, list[dict]] = {name: [] for _, name in rows}
            try:
                for _ in range(args.runs):
                    for _, name in rows:
                        side = "ours" if name == "ours" else "openai" if name.startswith("openai") else "evalscope"
                        cfg = {
                            "side": side,
                            "url": urls[name],
                            "problems": args.problems,
                            "max_tokens": args.max_tokens,
                            "concurrency": args.concurrency,
                        }
                        done = subprocess.run(
                            [sys.executable, __file__, "--child", str(root), json.dumps(cfg)],
                            capture_output=True,
                            text=True,
                            env=env,
                            timeout=args.timeout_s,
                            check=False,
                        )
                        if done.returncode:
                            sys.exit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                        got[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            finally:
                if lf is not None:
                    stop_process_group(lf)
        rate = {}
        for label, name in rows:
            seconds = statistics.median(r["seconds"] for r in got[name])
            rate[name] = statistics.median(r["tokens"] / r["seconds"] for r in got[name])
            cold = statistics.median(r["cold"] for r in got[name])
            print(
                f"{label}: {seconds:7.2f} s  {rate[name]:8.1f} tokens/s  (tokens {got[name][0]['tokens']}; "
                f"cold pass {cold:.2f} s)",
                flush=True,
            )
        print(f"ratio ours/peer EvalScope client: {rate['ours'] / rate['evalscope']:.2f}x tokens/s", flush=True)
        if "llamafactory" in rate:
            print(
                f"ratio ours/peer llamafactory-cli api server (thin OpenAI client on both): "
                f"{rate['openai-motab'] / rate['openai-llamafactory']:.2f}x tokens/s",
                flush=True,
            )
            print(
                f"ratio ours/peer llamafactory-cli api server (EvalScope client on both): "
                f"{rate['evalscope'] / rate['llamafactory']:.2f}x tokens/s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
