"""Sample n responses per problem from a model over HTTP (SGLang native /generate).

`python -m motab eval-generate --model DIR (--problems problems.jsonl --output responses.jsonl | --jobs-json JOBS)
 --n 4 --temperature 0.6 --top-p 1.0 --top-k -1 --max-tokens 128 --seed 0 --batch-problems 16
 --max-in-flight 4 [--server-command TEMPLATE] [--server-log LOG] [--server-url URL]
 [--system SYSTEM] [--close-think]`

Problems are sent in id order, --batch-problems per request, each repeated n times. Each row
carries its own sampling seed, derived from (--seed, the problem id) (SGLang takes a list of
sampling_params, one per row), so a problem's samples depend neither on which problems share its
request (--batch-problems) nor on timing or how many requests were in flight. The output is written atomically,
one row per problem sorted by id.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

from motab.jsonio import DataError, iter_jsonl, require, write_jsonl


def _log(message: str) -> None:
    print(f"[eval-generate] {message}", file=sys.stderr, flush=True)


def problem_seed(seed: int, problem_id: str) -> int:
    """The sampling_seed of every row of problem `problem_id` (fits in 31 bits)."""
    digest = hashlib.sha256(f"{seed}\x00{problem_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _id_key(problem_id) -> tuple:
    return (0, problem_id, "") if isinstance(problem_id, int) else (1, 0, str(problem_id))


def load_problems(path: str | Path) -> list[dict]:
    rows, seen = [], {}
    for line, obj in iter_jsonl(path):
        pid = require(obj, "id", (str, int), path, line)
        require(obj, "input", str, path, line)
        require(obj, "answer", (str, int, float), path, line)
        if pid in seen:
            raise DataError(path, line, "id", f"duplicate id {pid!r} (first on line {seen[pid]})")
        seen[pid] = line
        rows.append(obj)
    if not rows:
        raise DataError(path, None, None, "no problems")
    return sorted(rows, key=lambda r: _id_key(r["id"]))


def build_payload(
    prompts: list[str], ids: list[str], n: int, seed: int, temperature: float, top_p: float, top_k: int, max_tokens: int
) -> dict:
    # The n copies of a prompt share its seed; the server tells them apart by occurrence.
    return {
        "text": [p for p in prompts for _ in range(n)],
        "sampling_params": [
            {
                "temperature": temperature,
                "top_p": top_p,
                "top_k": top_k,
                "max_new_tokens": max_tokens,
                "sampling_seed": problem_seed(seed, problem_id),
            }
            for problem_id in ids
            for _ in range(n)
        ],
    }


async def generate_all(url: str, problems: list[dict], prompts: list[str], args) -> list[dict]:
    from tqdm import tqdm

    from motab.serving.client import ServerClient, completion_tokens, finish_reason

    chunks = [
        list(range(i, min(i + args.batch_problems, len(problems))))
        for i in range(0, len(problems), args.batch_problems)
    ]
    rows: list[dict | None] = [None] * len(problems)
    bar = tqdm(total=len(problems), desc="problems", unit="problem", file=sys.stderr)

    async with ServerClient(url, max_in_flight=args.max_in_flight) as client:

        async def one(chunk: list[int]) -> None:
            payload = build_payload(
                [prompts[i] for i in chunk],
                [str(problems[i]["id"]) for i in chunk],
                args.n,
                args.seed,
                args.temperature,
                args.top_p,
                args.top_k,
                args.max_tokens,
            )
            out = await client.generate(payload)
            if not isinstance(out, list) or len(out) != len(chunk) * args.n:
                raise RuntimeError(
                    f"{url}/generate: expected {len(chunk) * args.n} results, "
                    f"found {len(out) if isinstance(out, list) else type(out).__name__}"
                )
            for k, i in enumerate(chunk):
                mine = out[k * args.n : (k + 1) * args.n]
                problem = problems[i]
                rows[i] = {
                    "id": problem["id"],
                    "input": problem["input"],
                    "gold": problem["answer"],
                    "prompt": prompts[i],
                    "responses": [r["text"] for r in mine],
                    "finish_reasons": [finish_reason(r) for r in mine],
                    "completion_tokens": [completion_tokens(r) for r in mine],
                }
            bar.update(len(chunk))

        await asyncio.gather(*(one(chunk) for chunk in chunks))
    bar.close()
    return [row for row in rows if row is not None]


def user_turn(template: str, problem: str) -> str:
    """The user message: the template with the problem in place of {problem} (other braces kept)."""
    return template.replace("{problem}", problem)


# What one generation job states (its own benchmark file, output and sampling); --jobs-json lists
# several, all served by ONE server start (a run's benchmarks x seeds in one SLURM job).
JOB_KEYS = ("problems", "output", "n", "temperature", "top_p", "top_k", "max_tokens", "seed", "batch_problems")


def parse_jobs(text: str, defaults: argparse.Namespace) -> list[argparse.Namespace]:
    """--jobs-json: a list of {problems, output, and any sampling key}; unset keys take the flags'."""
    from motab.evaluation.jobs import parse_jobs as parse

    return parse(text, defaults, JOB_KEYS, ("problems", "output"))


def run_job(url: str, job: argparse.Namespace, tokenizer) -> None:
    """One benchmark file at one seed against a running server; the output is written atomically."""
    from motab.chat import build_prompt

    t0 = time.perf_counter()
    problems = load_problems(job.problems)
    thinking = None if job.enable_thinking is None else job.enable_thinking == "true"
    prompts = [
        build_prompt(
            tokenizer,
            user_turn(job.prompt_template, p["input"]),
            system=job.system,
            enable_thinking=thinking,
            close_think=job.close_think,
        )
        for p in problems
    ]
    _log(f"{len(problems)} problems x {job.n} samples from {job.problems} (seed {job.seed})")
    rows = asyncio.run(generate_all(url, problems, prompts, job))
    t1 = time.perf_counter()
    tokens = sum(sum(r["completion_tokens"]) for r in rows)
    _log(f"generated {tokens} tokens in {t1 - t0:.1f} s ({tokens / max(t1 - t0, 1e-9):.0f} tokens/s)")
    write_jsonl(job.output, rows)
    _log(f"wrote {job.output} ({len(rows)} rows)")


def build_parser() -> argparse.ArgumentParser:
    from motab.serving.launch import LOCAL_SERVER, STARTUP_TIMEOUT_S

    parser = argparse.ArgumentParser(prog="motab eval-generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint folder (its tokenizer builds the prompts)")
    parser.add_argument("--problems", help="problems.jsonl: {id, input, answer, solution, source}")
    parser.add_argument("--output", help="responses.jsonl")
    parser.add_argument(
        "--jobs-json",
        default=None,
        help="instead of --problems/--output: a JSON list of {problems, output, n, temperature, "
        "top_p, top_k, max_tokens, seed, batch_problems}, all on one server",
    )
    parser.add_argument("--n", type=int, default=4, help="responses per problem")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=-1)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-problems", type=int, default=16, help="problems per /generate request")
    parser.add_argument("--max-in-flight", type=int, default=4, help="concurrent requests")
    parser.add_argument(
        "--server-command", default=LOCAL_SERVER, help="server command template with {python} {model} {host} {port}"
    )
    parser.add_argument("--server-log", default=None, help="server log (default: OUTPUT.server.log)")
    parser.add_argument(
        "--placement", default=None, help="the job GPUs each server sees (role model), JSON of motab.serving.placement"
    )
    parser.add_argument("--server-url", default=None, help="use this running server instead of starting one")
    parser.add_argument(
        "--server-startup-timeout",
        type=float,
        default=STARTUP_TIMEOUT_S,
        help="seconds to wait for each server to become healthy (studies' resources.<stage>.server_startup_s)",
    )
    parser.add_argument("--system", default=None, help="system prompt (default: the template's own)")
    parser.add_argument("--close-think", action="store_true", help="close an unclosed trailing <think>")
    parser.add_argument(
        "--prompt-template",
        default="{problem}",
        help="the user turn, with {problem} where the problem goes (PW-OPSD's evaluator adds "
        "'Please reason step by step, and put your final answer within \\boxed{}.')",
    )
    parser.add_argument(
        "--prompt-template-json",
        default=None,
        help="--prompt-template as a JSON string (what the workflow passes: one line)",
    )
    parser.add_argument(
        "--enable-thinking",
        choices=["true", "false"],
        default=None,
        help="passed to the chat template (default: the template's own)",
    )
    return parser


def _prompt_template(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--prompt-template-json into args.prompt_template; the template must hold {problem}."""
    if args.prompt_template_json is not None:
        try:
            args.prompt_template = json.loads(args.prompt_template_json)
        except json.JSONDecodeError as exc:
            parser.error(f"--prompt-template-json is not a JSON string: {exc}")
        if not isinstance(args.prompt_template, str):
            parser.error(f"--prompt-template-json must hold a JSON string, found {args.prompt_template!r}")
    if "{problem}" not in args.prompt_template:
        parser.error(f"--prompt-template must contain {{problem}}, found {args.prompt_template!r}")


def _jobs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[argparse.Namespace]:
    """The jobs to run: those of --jobs-json, or the one of --problems/--output; counts checked."""
    if args.jobs_json:
        if args.problems or args.output:
            parser.error("give --jobs-json or --problems/--output, not both")
        try:
            jobs = parse_jobs(args.jobs_json, args)
        except ValueError as exc:
            parser.error(str(exc))
    elif not (args.problems and args.output):
        parser.error("--problems and --output are required (or --jobs-json)")
    else:
        jobs = [args]
    for job in jobs:
        for name in ("n", "batch_problems", "max_in_flight"):
            if getattr(job, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be at least 1, found {getattr(job, name)}")
    return jobs


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _prompt_template(parser, args)
    jobs = _jobs(parser, args)

    from transformers import AutoTokenizer

    from motab.serving.launch import server_or_url

    _log("command: python -m motab eval-generate " + shlex.join(argv))
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    log_path = args.server_log or str(jobs[0].output) + ".server.log"
    context = server_or_url(
        args.server_url, args.server_command, args.model, log_path, args.server_startup_timeout, args.placement
    )
    with context as url:
        _log(
            f"server at {url} ready after {time.perf_counter() - t0:.1f} s"
            + ("" if args.server_url else f" (log: {log_path})")
            + f"; {len(jobs)} job(s) on it"
        )
        for job in jobs:
            run_job(url, job, tokenizer)
    _log(f"{len(jobs)} job(s) in {time.perf_counter() - t0:.1f} s total")
    return 0
