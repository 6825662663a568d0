"""`motab eval-critic`: an LLM judge's score of every response in an eval JSON.

    motab eval-critic --eval seed0.json --model JUDGE_DIR --output seed0.critic.json
        --rubric "Rate the clarity and correctness of the reasoning." --scale-min 1 --scale-max 5
        [--max-tokens 16 --temperature 0 --seed 0 --max-in-flight 4]
        [--server-command TEMPLATE | --server-url URL]

The CoT-filter paper reports a critic score beside accuracy and word count. The judge is any
model behind the same server client the pipeline uses (OpenAI /v1/chat/completions): one chat
request per response, the rubric and the scale from config, the problem and the response in the
user message, and "Answer with a single number from MIN to MAX." The score is the first number in
the reply within the scale; a reply without one is counted as invalid (never as a score).
Requests are seeded from (--seed, problem id, sample index), so a rerun asks the same questions
with the same seeds. Output: {"run", "benchmark", "seed", "metrics": {"critic", "critic_invalid"},
"samples": [{"id", "critic": [score | null, ...], "replies": [...]}], "rubric", "scale",
"provenance"}; `critic` is the mean over valid scores, `critic_invalid` the invalid fraction.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
from contextlib import nullcontext

from motab.commandline import command_parser
from motab.jsonio import DataError, write_json
from motab.serving.placement import from_json

_NUMBER_RE = re.compile(r"[-+]?\d+(?:\.\d+)?")


def critic_messages(rubric: str, low: float, high: float, problem: str, response: str) -> list[dict]:
    return [
        {"role": "system", "content": f"You are a strict grader. {rubric.strip()}"},
        {
            "role": "user",
            "content": f"Problem:\n{problem.strip()}\n\nResponse:\n{response.strip()}\n\n"
            f"Score the response on a scale from {low:g} to {high:g} following the rubric. "
            f"Answer with a single number from {low:g} to {high:g}.",
        },
    ]


def parse_score(reply: str | None, low: float, high: float) -> float | None:
    """The first number of the reply that lies within [low, high], or None."""
    for match in _NUMBER_RE.finditer(reply or ""):
        value = float(match.group(0))
        if low <= value <= high:
            return value
    return None


def request_seed(seed: int, problem_id: str, sample: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{problem_id}\x00{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def summarize(scores: list[list[float | None]]) -> dict[str, float]:
    flat = [s for row in scores for s in row]
    valid = [s for s in flat if s is not None]
    return {
        "critic": round(sum(valid) / len(valid), 6) if valid else 0.0,
        "critic_invalid": round(1 - len(valid) / len(flat), 6) if flat else 0.0,
    }


def read_eval(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            obj = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, None, f"not valid JSON ({exc.msg})") from None
    for field in ("run", "benchmark", "seed", "samples"):
        if field not in obj:
            raise DataError(path, None, field, "missing field (an eval JSON from eval-grade)")
    for i, sample in enumerate(obj["samples"]):
        for field in ("id", "responses"):
            if field not in sample:
                raise DataError(path, None, f"samples[{i}].{field}", "missing field")
    return obj


async def judge_all(url: str, problems: dict[str, str], evaluation: dict, args) -> list[dict]:
    from motab.serving.client import ServerClient

    async with ServerClient(url, max_in_flight=args.max_in_flight) as client:

        async def one(problem_id: str, sample: int, response: str) -> str:
            payload = {
                "messages": critic_messages(
                    args.rubric, args.scale_min, args.scale_max, problems.get(problem_id, ""), response
                ),
                "max_tokens": args.max_tokens,
                "temperature": args.temperature,
                "seed": request_seed(args.seed, problem_id, sample),
            }
            out = await client.chat(payload)
            return out["choices"][0]["message"]["content"] or ""

        rows = []
        for record in evaluation["samples"]:
            replies = await asyncio.gather(*(one(record["id"], k, r) for k, r in enumerate(record["responses"])))
            rows.append(
                {
                    "id": record["id"],
                    "replies": list(replies),
                    "critic": [parse_score(reply, args.scale_min, args.scale_max) for reply in replies],
                }
            )
    return rows


def parse_args(argv: list[str]) -> argparse.Namespace:
    """eval-critic's command line; --scale-min must lie below --scale-max."""
    from motab.serving.launch import LOCAL_SERVER, STARTUP_TIMEOUT_S

    parser = command_parser(
        "eval-critic",
        __doc__.split("\n\n")[0],
        "motab eval-critic --eval seed0.json --problems results/toy/benchmarks/toy_test.jsonl --model Qwen/Qwen3-8B --rubric rubric.txt --output seed0.critic.json",
    )
    parser.add_argument("--eval", required=True, help="eval JSON (eval-grade's output)")
    parser.add_argument("--problems", default=None, help="problems.jsonl: the problem text shown to the judge")
    parser.add_argument("--model", required=True, help="the judge's checkpoint folder or hub id")
    parser.add_argument("--output", required=True)
    parser.add_argument("--rubric", required=True)
    parser.add_argument("--scale-min", type=float, default=1.0)
    parser.add_argument("--scale-max", type=float, default=5.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--server-command", default=LOCAL_SERVER)
    parser.add_argument("--server-log", default=None)
    parser.add_argument(
        "--server-startup-timeout",
        type=float,
        default=STARTUP_TIMEOUT_S,
        help="seconds to wait for each server to become healthy (studies' resources.<stage>.server_startup_s)",
    )
    parser.add_argument(
        "--placement", default=None, help="the job GPUs each server sees (role judge), JSON of motab.serving.placement"
    )
    parser.add_argument("--server-url", default=None)
    parser.add_argument("--params-json", default="{}", help="config values this output depends on (provenance)")
    args = parser.parse_args(argv)
    if not args.scale_min < args.scale_max:
        parser.error(f"--scale-min must be below --scale-max, found {args.scale_min} and {args.scale_max}")
    return args


def read_problems(path: str | None) -> dict[str, str]:
    """problems.jsonl as {id: problem text} (the text shown to the judge); empty without a path."""
    from motab.jsonio import iter_jsonl

    problems = {}
    if path:
        problems = {str(obj.get("id")): str(obj.get("input", "")) for _, obj in iter_jsonl(path)}
    return problems


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    from motab.provenance import provenance
    from motab.serving.launch import serving

    evaluation = read_eval(args.eval)
    problems = read_problems(args.problems)
    log_path = args.server_log or str(args.output) + ".server.log"
    context = (
        nullcontext(args.server_url)
        if args.server_url
        else serving(
            args.server_command,
            args.model,
            log_path,
            startup_timeout_s=args.server_startup_timeout,
            placement=from_json(args.placement).get("judge"),
        )
    )
    with context as url:
        rows = asyncio.run(judge_all(url, problems, evaluation, args))
    metrics = summarize([row["critic"] for row in rows])
    write_json(
        args.output,
        {
            "run": evaluation["run"],
            "benchmark": evaluation["benchmark"],
            "seed": evaluation["seed"],
            "metrics": metrics,
            "samples": rows,
            "rubric": args.rubric,
            "scale": [args.scale_min, args.scale_max],
            "provenance": provenance(json.loads(args.params_json)),
        },
    )
    print(
        f"{evaluation['run']}/{evaluation['benchmark']}/seed{evaluation['seed']}: critic={metrics['critic']:.3f} "
        f"(invalid {metrics['critic_invalid']:.1%})",
        file=sys.stderr,
    )
    return 0
