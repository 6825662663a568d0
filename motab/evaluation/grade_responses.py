"""`motab eval-grade`: grade sampled responses and write the eval JSON.

Input (--responses, JSONL): {"id", "input", "gold", "prompt", "responses": [str, ...],
"finish_reasons": [...], "completion_tokens": [...]} per problem (the evalscope engine adds
"evalscope": {"scores": [...]}: EvalScope's own verdicts, averaged into metrics.evalscope_acc).
Output (--output, JSON): {"run", "benchmark", "seed", "n_samples", "num_problems", "metrics",
"samples", "extraction", "equivalence", "provenance"} (+ "metrics_by_extraction" when several
extraction modes are asked for); see docs/studies.md, "Tracing a table cell back to its files".
Equal inputs give equal bytes.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from motab.commandline import command_parser
from motab.evaluation.answer_clusters import cluster_answers
from motab.evaluation.metrics import majority_vote, summarize
from motab.grading.equivalence import EQUIVALENCES, judge_many
from motab.grading.extraction import DEFAULT_MODE, MODES, extract_answer, gold_text
from motab.jsonio import DataError, iter_jsonl, require, write_json
from motab.provenance import provenance

DECIMALS = 6


def read_responses(path: str | os.PathLike) -> list[dict]:
    """Validated problem records, sorted by id; every problem must have the same number of responses."""
    rows: list[dict] = []
    seen: dict[str, int] = {}
    n_samples: int | None = None
    first_line = 0
    for line, obj in iter_jsonl(path):
        pid = require(obj, "id", (str, int), path, line)
        pid = str(pid)
        if pid in seen:
            raise DataError(path, line, "id", f"duplicate id {pid!r} (first on line {seen[pid]})")
        seen[pid] = line
        gold = require(obj, "gold", (str, int, float), path, line)
        if isinstance(gold, bool):
            raise DataError(path, line, "gold", "expected str/int/float, found bool")
        require(obj, "input", str, path, line)
        require(obj, "prompt", (str, list), path, line)
        responses = require(obj, "responses", list, path, line)
        if not responses:
            raise DataError(path, line, "responses", "expected at least one response, found an empty list")
        for j, r in enumerate(responses):
            if not isinstance(r, str):
                raise DataError(path, line, f"responses[{j}]", f"expected str, found {type(r).__name__}")
        for field in ("finish_reasons", "completion_tokens"):
            values = require(obj, field, list, path, line)
            if len(values) != len(responses):
                raise DataError(
                    path, line, field, f"expected {len(responses)} entries (one per response), found {len(values)}"
                )
        if n_samples is None:
            n_samples, first_line = len(responses), line
        elif len(responses) != n_samples:
            raise DataError(
                path,
                line,
                "responses",
                f"expected {n_samples} responses like line {first_line}, found {len(responses)}",
            )
        row = {"id": pid, "gold": gold_text(gold), "responses": list(responses)}
        if isinstance(obj.get("over_long"), dict):  # skipped or cut by eval-generate: named in the eval JSON
            row["over_long"] = obj["over_long"]
        if "evalscope" in obj:  # the evalscope engine's own per-sample scores, kept beside ours
            scores = obj["evalscope"].get("scores") if isinstance(obj["evalscope"], dict) else None
            if not isinstance(scores, list) or len(scores) != len(responses):
                raise DataError(path, line, "evalscope.scores", f"expected {len(responses)} scores (one per response)")
            row["evalscope_scores"] = scores
        rows.append(row)
    if not rows:
        raise DataError(path, None, None, "no problems in the responses file")
    rows.sort(key=lambda r: r["id"])
    return rows


def remove_until(text: str, delimiter: str | None) -> str:
    """EvalScope's remove_until filter: the text after the first delimiter (all of it without one)."""
    return text.split(delimiter, 1)[-1] if delimiter else text


def score(
    rows: Sequence[dict],
    k: int,
    processes: int = 1,
    timeout_s: float = 5.0,
    extraction: str = DEFAULT_MODE,
    equivalence: str = "motab",
    grader: str = "math",
    until: str | None = None,
) -> tuple[dict, list[dict]]:
    """(metrics, samples) for validated problem rows; metrics rounded once to DECIMALS.

    `extraction` names the answer-extraction mode (extraction.MODES) and `equivalence` the comparison
    (equivalence.EQUIVALENCES); clustering for Maj@k checks both directions under `pwopsd`.
    grader "multiple_choice": the letter grader (motab.grading.multiple_choice); until: grade
    only the text after it (EvalScope's remove_until, e.g. "</think>").
    """
    if until:
        rows = [row | {"graded": [remove_until(r, until) for r in row["responses"]]} for row in rows]
    if grader == "multiple_choice":
        return _score_choices(rows, k)
    preds = [[extract_answer(r, extraction) for r in row.get("graded", row["responses"])] for row in rows]
    grade_pairs = [(p, row["gold"]) for row, ps in zip(rows, preds) for p in ps]
    grades = judge_many(grade_pairs, processes=processes, timeout_s=timeout_s, equivalence=equivalence)
    slow = {p for (p, _), (_, reason) in zip(grade_pairs, grades) if reason == "timeout" and p is not None}
    clusters = cluster_answers(
        preds, equivalence, both_ways=equivalence == "pwopsd", skip=slow, processes=processes, timeout_s=timeout_s
    )
    samples = []
    offset = 0
    for row, ps, labels in zip(rows, preds, clusters):
        g = grades[offset : offset + len(ps)]
        offset += len(ps)
        samples.append(
            {
                "id": row["id"],
                "gold": row["gold"],
                "responses": row["responses"],
                "preds": ps,
                "correct": [ok for ok, _ in g],
                "reasons": [reason for _, reason in g],
                "cluster": labels,
            }
        )
    return _metrics(rows, samples, k)


def _score_choices(rows: Sequence[dict], k: int) -> tuple[dict, list[dict]]:
    from motab.grading.multiple_choice import grade_choice

    samples = []
    for row in rows:
        graded = [grade_choice(r, row["gold"]) for r in row.get("graded", row["responses"])]
        preds = [pred for pred, _, _ in graded]
        _, clusters = majority_vote(preds, lambda a, b: a == b)  # letters: equal or not
        samples.append(
            {
                "id": row["id"],
                "gold": row["gold"],
                "responses": row["responses"],
                "preds": preds,
                "correct": [ok for _, ok, _ in graded],
                "reasons": [reason for _, _, reason in graded],
                "cluster": clusters,
            }
        )
    return _metrics(rows, samples, k)


def _metrics(rows: Sequence[dict], samples: list[dict], k: int) -> tuple[dict, list[dict]]:
    metrics = summarize(samples, k)
    if k != 1:
        metrics.update(
            {
                key.replace(f"@{k}", "@1"): value
                for key, value in summarize(samples, 1).items()
                if key.startswith("pass@")
            }
        )
    engine_scores = [x for row in rows for x in row.get("evalscope_scores", []) if isinstance(x, (int, float))]
    if engine_scores:
        metrics["evalscope_acc"] = sum(engine_scores) / len(engine_scores)
    return {key: round(float(value), DECIMALS) for key, value in metrics.items()}, samples


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "eval-grade",
        __doc__.splitlines()[0],
        "motab eval-grade --responses seed0.responses.jsonl --output seed0.json --run base_student --benchmark toy_test --seed 0",
    )
    parser.add_argument("--responses", required=True, help="responses JSONL (one problem per line)")
    parser.add_argument("--output", required=True, help="eval JSON to write")
    parser.add_argument("--run", required=True)
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--k", type=int, default=None, help="k of pass@k/avg@k/maj@k (default: n samples)")
    parser.add_argument("--processes", type=int, default=1, help="grading worker processes")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="per-answer grading timeout")
    parser.add_argument(
        "--extraction",
        default=DEFAULT_MODE,
        help=f"answer-extraction mode, or several comma-separated ({', '.join(MODES)}): the first "
        "gives `metrics`, each one its entry in `metrics_by_extraction`",
    )
    parser.add_argument(
        "--equivalence",
        default="motab",
        choices=sorted(EQUIVALENCES),
        help="answer comparison: motab (math-verify with number shortcuts), pwopsd "
        "(PW-OPSD's evaluate_math.py), cis5300 (the CoT-filter seed's score.py)",
    )
    parser.add_argument(
        "--grader",
        choices=["math", "multiple_choice"],
        default="math",
        help="multiple_choice: the letter of the last \\boxed{} or 'Answer: X' (GPQA-Diamond)",
    )
    parser.add_argument(
        "--remove-until",
        default=None,
        help="grade the text after the first occurrence only (EvalScope's filter), e.g. </think>",
    )
    parser.add_argument("--params-json", default="{}", help="config values this output depends on (provenance)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = json.loads(args.params_json)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--params-json: not valid JSON ({exc.msg})") from None
    if not isinstance(params, dict):
        raise SystemExit(f"--params-json: expected a JSON object, found {type(params).__name__}")
    rows = read_responses(args.responses)
    n = len(rows[0]["responses"])
    k = n if args.k is None else args.k
    if not 1 <= k <= n:
        raise SystemExit(f"--k must be between 1 and the {n} samples per problem, got {k}")
    modes = [m.strip() for m in args.extraction.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise SystemExit(f"--extraction: unknown mode(s) {unknown or args.extraction!r}; known: {', '.join(MODES)}")
    by_mode = {
        mode: score(
            rows,
            k,
            processes=args.processes,
            timeout_s=args.timeout_s,
            extraction=mode,
            equivalence=args.equivalence,
            grader=args.grader,
            until=args.remove_until,
        )
        for mode in dict.fromkeys(modes)
    }
    metrics, samples = by_mode[modes[0]]
    out = {
        "run": args.run,
        "benchmark": args.benchmark,
        "seed": args.seed,
        "n_samples": n,
        "num_problems": len(rows),
        "metrics": metrics,
        "samples": samples,
        "extraction": modes[0],
        "equivalence": args.equivalence,
        "provenance": provenance(params),
    }
    over_long = [{"id": row["id"], **row["over_long"]} for row in rows if "over_long" in row]
    if over_long:
        out["over_long"] = over_long
    if len(by_mode) > 1:
        out["metrics_by_extraction"] = {mode: m for mode, (m, _) in by_mode.items()}
    write_json(args.output, out)
    shown = ", ".join(f"{key}={value:.4f}" for key, value in sorted(metrics.items()))
    print(
        f"{args.run}/{args.benchmark}/seed{args.seed}: {len(rows)} problems x {n} samples "
        f"({modes[0]} extraction, {args.equivalence} equivalence): {shown}"
    )
    return 0
