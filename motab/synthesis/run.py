"""`motab synth`: run a synthesis method over HTTP, resumably.

Rows are appended to `<output>.partial` as each chunk of problems completes; a rerun after a
kill skips the (id, sample) pairs already there. The partial file starts with a resume key (see
resume.py): a rerun with other parameters, models or problems stops at start, naming the change. When every problem is done the rows are graded
against gold, sorted by (id, sample) and written to the declared output in one atomic rename,
so Snakemake never sees (or deletes) a half-written output.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

from tqdm import tqdm

from motab.commandline import command_parser
from motab.errors import UserError
from motab.grading.equivalence import grade_many
from motab.grading.extraction import extract_answer
from motab.jsonio import dumps, read_jsonl, write_json, write_text
from motab.provenance import provenance
from motab.serving.client import ServerClient
from motab.serving.launch import LOCAL_SERVER, STARTUP_TIMEOUT_S, serving
from motab.serving.placement import from_json
from motab.settings_file import check_settings, read_settings
from motab.synthesis import methods, resume
from motab.synthesis.context import SynthContext
from motab.synthesis.stats import synth_stats
from motab.synthesis.tokenizer import load_tokenizer


def needs_chat_template(params) -> bool:
    """Whether the run renders a chat prompt, so needs transformers' tokenizer (see tokenizer.py):
    the method reads the chat prompts (`params.chat_prompts`; the step methods build their own
    starting context, the raw question in released mode) or its paper mode does."""
    return params.chat_prompts or getattr(params, "compat", "released") != "released"


def append_rows(handle, rows: list[dict]) -> None:
    """Append a chunk's rows and flush them to disk once (one fsync per chunk, not per row: a killed
    job keeps every finished chunk, and a torn last line is dropped on resume)."""
    if rows:
        handle.write("".join(dumps(row) + "\n" for row in rows))
        handle.flush()
        os.fsync(handle.fileno())


def completed_pairs(partial: Path) -> dict[tuple[str, int], dict]:
    """Rows already written by an earlier (possibly killed) attempt; a torn last line is dropped."""
    return resume.read_partial(partial)[1]


def synthesize(
    method: str,
    problems: list[dict],
    tokenizer,
    url: str,
    params,
    partial: Path,
    max_in_flight: int,
    student_url: str | None = None,
    key: dict | None = None,
) -> None:
    """Run the method over every chunk not yet complete in `partial`, appending each chunk's rows."""
    done = completed_pairs(partial)
    # Rewrite the partial file with its key and only complete rows so a torn line cannot be read twice.
    write_text(partial, (resume.header_line(key) if key else "") + "".join(dumps(row) + "\n" for row in done.values()))
    # Chunks are cut from the full problem list, never from what is left, so a resumed run sends
    # exactly the requests (and seeds) an uninterrupted run would: the same bytes either way.
    chunks = [problems[i : i + params.batch_problems] for i in range(0, len(problems), params.batch_problems)]
    chunks = [c for c in chunks if any((p["id"], s) not in done for p in c for s in range(params.num_responses))]
    remaining = sum(len(c) for c in chunks)
    bar = tqdm(total=len(problems), initial=len(problems) - remaining, desc=f"synth {method}", unit="problem")
    with open(partial, "a", encoding="utf-8") as handle:
        asyncio.run(_run_chunks(method, chunks, done, tokenizer, url, student_url, params, max_in_flight, handle, bar))
    bar.close()


async def _run_chunks(
    method: str,
    chunks: list[list[dict]],
    done: dict,
    tokenizer,
    url: str,
    student_url: str | None,
    params,
    max_in_flight: int,
    handle,
    bar,
) -> None:
    """All chunks at once (each server client keeps at most max_in_flight requests outstanding, so
    the teacher and the student work on different chunks at the same time); rows are appended as
    each chunk completes."""
    from motab.chat import build_prompt

    _, chunk_fn = methods.load(method)
    prompted = params.chat_prompts
    tokens, start = 0, time.time()
    async with AsyncExitStack() as stack:
        teacher = await stack.enter_async_context(ServerClient(url, max_in_flight=max_in_flight))
        student = (
            await stack.enter_async_context(ServerClient(student_url, max_in_flight=max_in_flight))
            if student_url
            else None
        )
        ctx = SynthContext(teacher=teacher, student=student, tokenizer=tokenizer)

        async def one(chunk):
            prompts = [build_prompt(tokenizer, p["input"]) for p in chunk] if prompted else []
            return chunk, await chunk_fn(ctx, chunk, prompts, params)

        for future in asyncio.as_completed([one(chunk) for chunk in chunks]):
            chunk, rows = await future
            rows = [row for row in rows if (row["id"], row["sample"]) not in done]
            append_rows(handle, rows)
            tokens += sum(row["stats"]["teacher_tokens"] + row["stats"]["student_tokens"] for row in rows)
            bar.update(len(chunk))
            bar.set_postfix(tok_per_s=f"{tokens / max(time.time() - start, 1e-9):.0f}")


def finalize(
    partial: Path, output: Path, problems: list[dict], method: str, params, meta: dict, stats_path: str | None = None
) -> int:
    """Grade, sort and atomically publish the finished rows (and their summary); returns the row count."""
    gold = {p["id"]: p["answer"] for p in problems}
    rows = sorted(completed_pairs(partial).values(), key=lambda r: (r["id"], r["sample"]))
    preds = [extract_answer(row["output"]) for row in rows]
    grades = grade_many([(pred, gold[row["id"]]) for pred, row in zip(preds, rows)], processes=1)
    for row, pred, grade in zip(rows, preds, grades):
        row["answer_pred"] = pred
        row["correct"] = grade.correct
        row["meta"] = meta
    if stats_path:
        write_json(stats_path, synth_stats(rows) | {"provenance": provenance(meta)})
    write_text(output, "".join(dumps(row) + "\n" for row in rows))
    os.unlink(partial)
    return len(rows)


def check_shared_vocab(teacher_tok, student_tok, teacher: str, student: str) -> None:
    """Draft-and-verify methods pass token ids between the models: their vocabularies must agree."""
    t_vocab, s_vocab = teacher_tok.get_vocab(), student_tok.get_vocab()
    if t_vocab != s_vocab:
        differ = sorted(set(t_vocab.items()) ^ set(s_vocab.items()), key=lambda kv: kv[1])[:3]
        raise SystemExit(
            f"teacher {teacher} and student {student} have different vocabularies "
            f"({len(t_vocab)} vs {len(s_vocab)} tokens; e.g. {differ}): token ids cannot be shared"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "synth",
        __doc__,
        "motab synth --method teacher_only --problems results/toy/data/problems.jsonl --teacher results/toy/models/toy-teacher --config teacher_only.yaml --output teacher_only.jsonl",
    )
    parser.add_argument("--method", required=True, choices=sorted(methods.METHODS))
    parser.add_argument("--problems", required=True)
    parser.add_argument("--teacher", required=True, help="teacher checkpoint folder or hub id")
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--config", help="YAML or JSON file of the method's settings (a study's synth.<method> block in config.yaml)"
    )
    parser.add_argument("--params-json", help="the same as a JSON object, over --config's keys (what the rules pass)")
    parser.add_argument("--server-command", default=LOCAL_SERVER)
    parser.add_argument("--server-url", help="use a running teacher server instead of starting one")
    parser.add_argument("--server-log", default="logs/synth.server.log")
    parser.add_argument(
        "--server-startup-timeout",
        type=float,
        default=STARTUP_TIMEOUT_S,
        help="seconds to wait for each server to become healthy (studies' resources.<stage>.server_startup_s)",
    )
    parser.add_argument(
        "--placement",
        default=None,
        help="the job GPUs each server sees (roles teacher, student), JSON of motab.serving.placement",
    )
    parser.add_argument(
        "--student",
        help="student checkpoint folder or hub id (methods that draft: "
        + ", ".join(sorted(methods.DRAFTING))
        + "); must share the teacher's vocabulary",
    )
    parser.add_argument("--student-url", help="use a running student server instead of starting one")
    parser.add_argument("--student-log", default="logs/synth.student.server.log")
    parser.add_argument(
        "--student-server-command",
        default=None,
        help="the student's server command (its own tp/dp; default: --server-command)",
    )
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--stats", help="also write a JSON summary (teacher share, steps, accuracy) here")
    return parser


def method_settings(args: argparse.Namespace) -> dict:
    """The method's settings from --config and --params-json; a key its params dataclass lacks (or a
    missing one) is a UserError naming where the settings came from."""
    values = read_settings(args.config, args.params_json, f"synth {args.method}")
    where = args.config or "--params-json"
    if args.config:
        check_settings(values, f"synth/{args.method}", args.config)
    try:
        methods.load(args.method)[0](**values)
    except TypeError as exc:
        raise UserError(f"{where}: {exc}") from None
    return values


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    values = method_settings(args)
    params = methods.load(args.method)[0](**values)
    problems = read_jsonl(args.problems)
    output = Path(args.output)
    partial = output.with_name(output.name + ".partial")
    key = resume.resume_key(args.method, values, args.teacher, args.student, args.problems)
    done = resume.check_resumable(partial, key, problems, params.num_responses, args.problems)
    if partial.exists():
        print(
            f"resuming from {partial}: {len(done)} rows already done (the partial file "
            "is not a declared output, so Snakemake keeps it across attempts)",
            flush=True,
        )
    else:
        print(f"appending rows to {partial} as problems complete; a rerun after a kill resumes from it", flush=True)
    chat = needs_chat_template(params)
    tokenizer = load_tokenizer(args.teacher, chat)
    needs_student = methods.METHODS[args.method].drafts
    if needs_student:
        if not args.student:
            parser.error(f"--method {args.method} drafts with a student: give --student")
        check_shared_vocab(tokenizer, load_tokenizer(args.student, chat), args.teacher, args.student)
    placement = from_json(args.placement)
    start = time.time()
    with ExitStack() as stack:
        url = args.server_url or stack.enter_context(
            serving(
                args.server_command,
                args.teacher,
                args.server_log,
                startup_timeout_s=args.server_startup_timeout,
                placement=placement.get("teacher"),
            )
        )
        student_url = None
        if needs_student:
            student_url = args.student_url or stack.enter_context(
                serving(
                    args.student_server_command or args.server_command,
                    args.student,
                    args.student_log,
                    startup_timeout_s=args.server_startup_timeout,
                    placement=placement.get("student"),
                )
            )
        synthesize(args.method, problems, tokenizer, url, params, partial, args.max_in_flight, student_url, key)
    meta = {"method": args.method, "teacher": args.teacher, "params": values}
    if needs_student:
        meta["student"] = args.student
    count = finalize(partial, output, problems, args.method, params, meta, args.stats)
    print(f"{count} trajectories in {time.time() - start:.1f}s -> {output}")
    return 0
