"""Sample n responses per problem from a model over HTTP (SGLang native /generate).

`motab eval-generate --model DIR (--problems problems.jsonl --output responses.jsonl | --jobs-json JOBS)
 --n 4 --temperature 0.6 --top-p 1.0 --top-k -1 --max-tokens 128 --seed 0 --batch-problems 16
 --max-in-flight 4 [--server-command TEMPLATE] [--server-log LOG] [--server-url URL]
 [--system SYSTEM] [--close-think]`

Problems are sent in id order, --batch-problems per request, each repeated n times. Each row
carries its own sampling seed, derived from (--seed, the problem id) (SGLang takes a list of
sampling_params, one per row), so a problem's samples depend neither on which problems share its
request (--batch-problems) nor on timing or how many requests were in flight. The output is written atomically,
one row per problem sorted by id.

A problem whose prompt + --max-tokens does not fit the context is skipped or its budget cut
(--over-long, over_long.py), and named with its file:line; rows are kept as they come in
<output>.partial.jsonl, so a killed job resumes to the same bytes (partial.py).
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

from motab.commandline import command_parser
from motab.evaluation import over_long
from motab.evaluation.partial import Partial, partial_key
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
    """The problems sorted by id, each with its line in the file under "_line" (not written out)."""
    rows, seen = [], {}
    for line, obj in iter_jsonl(path):
        pid = require(obj, "id", (str, int), path, line)
        require(obj, "input", str, path, line)
        require(obj, "answer", (str, int, float), path, line)
        if pid in seen:
            raise DataError(path, line, "id", f"duplicate id {pid!r} (first on line {seen[pid]})")
        seen[pid] = line
        rows.append(obj | {"_line": line})
    if not rows:
        raise DataError(path, None, None, "no problems")
    return sorted(rows, key=lambda r: _id_key(r["id"]))


def build_payload(
    prompts: list[str],
    ids: list[str],
    n: int,
    seed: int,
    temperature: float,
    top_p: float,
    top_k: int,
    max_tokens: int | list[int],
) -> dict:
    """One /generate body; max_tokens for all prompts or one per prompt (a budget cut to fit)."""
    budgets = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prompts)
    # The n copies of a prompt share its seed; the server tells them apart by occurrence.
    return {
        "text": [p for p in prompts for _ in range(n)],
        "sampling_params": [
            {
                "temperature": temperature,
                "top_p": top_p,
                "top_k": top_k,
                "max_new_tokens": budget,
                "sampling_seed": problem_seed(seed, problem_id),
            }
            for problem_id, budget in zip(ids, budgets)
            for _ in range(n)
        ],
    }


def response_row(problem: dict, prompt: str, results: list[dict], over_long: dict | None = None) -> dict:
    """One problem's output row from its n /generate results; `over_long` says why it was skipped or cut."""
    from motab.serving.client import completion_tokens, finish_reason

    over_long = over_long or problem.get("_over_long")  # a budget cut to fit the context
    row = {
        "id": problem["id"],
        "input": problem["input"],
        "gold": problem["answer"],
        "prompt": prompt,
        "responses": [r["text"] for r in results],
        "finish_reasons": [finish_reason(r) for r in results],
        "completion_tokens": [completion_tokens(r) for r in results],
    }
    return row | ({"over_long": over_long} if over_long else {})


def skipped_row(problem: dict, prompt: str, n: int, over_long: dict) -> dict:
    """n empty responses (graded wrong: the problem stays in the accuracy's denominator)."""
    return response_row(problem, prompt, [{"text": "", "meta_info": {}}] * n, over_long) | {
        "finish_reasons": ["skipped"] * n,
        "completion_tokens": [0] * n,
    }


def _expect_results(url: str, out, count: int) -> list[dict]:
    if not isinstance(out, list) or len(out) != count:
        found = len(out) if isinstance(out, list) else type(out).__name__
        raise RuntimeError(f"{url}/generate: expected {count} results, found {found}")
    return out


async def generate_all(
    url: str,
    problems: list[dict],
    prompts: list[str],
    args,
    max_tokens: list[int] | None = None,
    on_rows=None,
    refused=None,
) -> list[dict]:
    """Rows of every problem; max_tokens per problem (default args.max_tokens); on_rows(rows) as each
    request returns; refused(i, message): the row of a problem refused for its context length."""
    from tqdm import tqdm

    from motab.evaluation.over_long import is_context_refusal
    from motab.serving.client import RequestRejected, ServerClient

    budgets = max_tokens or [args.max_tokens] * len(problems)
    rows: list[dict | None] = [None] * len(problems)
    bar = tqdm(total=len(problems), desc="problems", unit="problem", file=sys.stderr)

    async with ServerClient(url, max_in_flight=args.max_in_flight) as client:

        async def request(chunk: list[int]) -> list[dict]:
            payload = build_payload(
                [prompts[i] for i in chunk],
                [str(problems[i]["id"]) for i in chunk],
                args.n,
                args.seed,
                args.temperature,
                args.top_p,
                args.top_k,
                [budgets[i] for i in chunk],
            )
            out = _expect_results(url, await client.generate(payload), len(chunk) * args.n)
            return [
                response_row(problems[i], prompts[i], out[k * args.n : (k + 1) * args.n]) for k, i in enumerate(chunk)
            ]

        async def one(chunk: list[int]) -> None:
            try:
                new = await request(chunk)
            except RequestRejected as exc:  # the server counts tokens its own way: find the problem
                if refused is None or not is_context_refusal(str(exc)):
                    raise
                if len(chunk) > 1:
                    return await asyncio.gather(*(one([i]) for i in chunk))
                new = [refused(chunk[0], str(exc))]
            for i, row in zip(chunk, new):
                rows[i] = row
            if on_rows is not None:
                on_rows(new)
            bar.update(len(chunk))

        size = args.batch_problems
        await asyncio.gather(
            *(one(list(range(i, min(i + size, len(problems))))) for i in range(0, len(problems), size))
        )
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


def job_prompts(job: argparse.Namespace, problems: list[dict], tokenizer) -> list[str]:
    from motab.chat import build_prompt

    thinking = None if job.enable_thinking is None else job.enable_thinking == "true"
    return [
        build_prompt(
            tokenizer,
            user_turn(job.prompt_template, p["input"]),
            system=job.system,
            enable_thinking=thinking,
            close_think=job.close_think,
        )
        for p in problems
    ]


def run_job(url: str, job: argparse.Namespace, tokenizer, context: int) -> Partial:
    """One benchmark file at one seed against a running server; the output is written atomically.
    Returns its Partial (main removes it once every job is done)."""
    t0 = time.perf_counter()
    problems = load_problems(job.problems)
    prompts = job_prompts(job, problems, tokenizer)
    limits = over_long.budgets(tokenizer, prompts, job.max_tokens, context, job.over_long)
    records = [limit.record(job.problems, p["_line"]) for limit, p in zip(limits, problems)]
    settings = {key: getattr(job, key) for key in JOB_KEYS if key not in ("problems", "output", "batch_problems")}
    public = [{k: v for k, v in p.items() if k != "_line"} for p in problems]
    key = partial_key(settings | {"over_long": job.over_long, "context": context}, job.model, public, prompts)
    partial = Partial(job.output, key)
    done = partial.load()
    rows, todo = [], []
    for i, (problem, limit, record) in enumerate(zip(public, limits, records)):
        if record:
            _log(f"over-long problem {problem['id']} ({record['file']}:{record['line']}): {record['reason']}")
        if str(problem["id"]) in done:
            rows.append(done[str(problem["id"])])
        elif limit.max_tokens is None:
            rows.append(skipped_row(problem, prompts[i], job.n, record))
        else:
            todo.append(i)
    kept = f"; {len(done)} kept from {partial.path}" if done else ""
    _log(f"{len(problems)} problems x {job.n} samples from {job.problems} (seed {job.seed}){kept}")

    def refused(k: int, message: str) -> dict:  # the server's own count found it over-long
        i = todo[k]
        record = {"action": "skipped", "file": str(job.problems), "line": problems[i]["_line"], "reason": message}
        _log(f"over-long problem {public[i]['id']} ({job.problems}:{problems[i]['_line']}): {message}; skipped")
        return skipped_row(public[i], prompts[i], job.n, record)

    sent = [public[i] | ({"_over_long": records[i]} if records[i] else {}) for i in todo]
    budgets = [limits[i].max_tokens for i in todo]
    new = asyncio.run(
        generate_all(url, sent, [prompts[i] for i in todo], job, budgets, on_rows=partial.add, refused=refused)
    )
    rows += new
    t1 = time.perf_counter()
    tokens = sum(sum(r["completion_tokens"]) for r in new)
    _log(f"generated {tokens} tokens in {t1 - t0:.1f} s ({tokens / max(t1 - t0, 1e-9):.0f} tokens/s)")
    write_jsonl(job.output, sorted(rows, key=lambda r: _id_key(r["id"])))
    _log(f"wrote {job.output} ({len(rows)} rows)")
    return partial


EXAMPLE = (
    "motab eval-generate --model results/toy/models/toy-student --problems results/toy/benchmarks/toy_test.jsonl "
    "--output seed0.responses.jsonl --n 2 --seed 0"
)


def build_parser() -> argparse.ArgumentParser:
    from motab.serving.launch import LOCAL_SERVER, STARTUP_TIMEOUT_S

    parser = command_parser("eval-generate", __doc__.split("\n\n")[0], EXAMPLE)
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
    parser.add_argument("--server-startup-timeout", type=float, default=STARTUP_TIMEOUT_S, help="seconds per server")
    parser.add_argument("--system", default=None, help="system prompt (default: the template's own)")
    parser.add_argument("--close-think", action="store_true", help="close an unclosed trailing <think>")
    parser.add_argument(
        "--over-long",
        choices=over_long.MODES,
        default="skip",
        help="a problem whose prompt + --max-tokens does not fit the context: skip it, or cut its max_tokens",
    )
    parser.add_argument(
        "--context-length", type=int, default=0, help="the server's context length (default: the model config's)"
    )
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

    _log("command: motab eval-generate " + shlex.join(argv))
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    log_path = args.server_log or str(jobs[0].output) + ".server.log"
    context = server_or_url(
        args.server_url, args.server_command, args.model, log_path, args.server_startup_timeout, args.placement
    )
    length = over_long.context_length(args.model, args.context_length)
    with context as url:
        _log(
            f"server at {url} ready after {time.perf_counter() - t0:.1f} s"
            + ("" if args.server_url else f" (log: {log_path})")
            + f"; {len(jobs)} job(s) on it"
        )
        partials = [run_job(url, job, tokenizer, length) for job in jobs]
    for partial in partials:  # kept until every job is written: a killed group resumes each
        partial.remove()
    _log(f"{len(jobs)} job(s) in {time.perf_counter() - t0:.1f} s total")
    return 0
