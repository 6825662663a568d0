"""`python -m motab eval-grade`: grade sampled responses and write the eval JSON.

Input (--responses, JSONL): {"id", "input", "gold", "prompt", "responses": [str, ...],
"finish_reasons": [...], "completion_tokens": [...]} per problem (the evalscope engine adds
"evalscope": {"scores": [...]}: EvalScope's own verdicts, averaged into metrics.evalscope_acc).
Output (--output, JSON): {"run", "benchmark", "seed", "n_samples", "num_problems", "metrics",
"samples", "provenance"}; see DESIGN.md "File contracts". Equal inputs give equal bytes.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from motab.evaluation.answers import extract_answer, gold_text
from motab.evaluation.grading import judge_many
from motab.evaluation.metrics import majority_vote, summarize
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
                raise DataError(path, line, field, f"expected {len(responses)} entries (one per response), "
                                                   f"found {len(values)}")
        if n_samples is None:
            n_samples, first_line = len(responses), line
        elif len(responses) != n_samples:
            raise DataError(path, line, "responses", f"expected {n_samples} responses like line {first_line}, "
                                                     f"found {len(responses)}")
        row = {"id": pid, "gold": gold_text(gold), "responses": list(responses)}
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


def score(rows: Sequence[dict], k: int, processes: int = 1, timeout_s: float = 5.0,
          grader: str = "math", until: str | None = None) -> tuple[dict, list[dict]]:
    """(metrics, samples) for validated problem rows; metrics rounded once to DECIMALS.
    grader "multiple_choice": the letter grader (motab.evaluation.multiple_choice); until: grade
    only the text after it (EvalScope's remove_until, e.g. "</think>")."""
    if until:
        rows = [row | {"graded": [remove_until(r, until) for r in row["responses"]]} for row in rows]
    if grader == "multiple_choice":
        return _score_choices(rows, k)
    preds = [[extract_answer(r) for r in row.get("graded", row["responses"])] for row in rows]
    # one batch for all grading and all clustering comparisons, so the worker pool stays busy
    grade_pairs = [(p, row["gold"]) for row, ps in zip(rows, preds) for p in ps]
    cluster_pairs: list[tuple[str, str]] = []
    for ps in preds:
        distinct = list(dict.fromkeys(p for p in ps if p is not None))
        cluster_pairs += [(distinct[j], distinct[i]) for j in range(len(distinct)) for i in range(j)]
    verdicts = judge_many(grade_pairs + cluster_pairs, processes=processes, timeout_s=timeout_s)
    grades = verdicts[:len(grade_pairs)]
    equal = {pair: ok for pair, (ok, _) in zip(cluster_pairs, verdicts[len(grade_pairs):])}

    def equivalent(a: str, b: str) -> bool:
        return a == b or equal.get((a, b), False)

    samples = []
    offset = 0
    for row, ps in zip(rows, preds):
        g = grades[offset:offset + len(ps)]
        offset += len(ps)
        _, clusters = majority_vote(ps, equivalent)
        samples.append({"id": row["id"], "gold": row["gold"], "responses": row["responses"], "preds": ps,
                        "correct": [ok for ok, _ in g], "reasons": [reason for _, reason in g],
                        "cluster": clusters})
    return _metrics(rows, samples, k)


def _score_choices(rows: Sequence[dict], k: int) -> tuple[dict, list[dict]]:
    from motab.evaluation.multiple_choice import grade_choice

    samples = []
    for row in rows:
        graded = [grade_choice(r, row["gold"]) for r in row.get("graded", row["responses"])]
        preds = [pred for pred, _, _ in graded]
        _, clusters = majority_vote(preds, lambda a, b: a == b)  # letters: equal or not
        samples.append({"id": row["id"], "gold": row["gold"], "responses": row["responses"], "preds": preds,
                        "correct": [ok for _, ok, _ in graded], "reasons": [reason for _, _, reason in graded],
                        "cluster": clusters})
    return _metrics(rows, samples, k)


def _metrics(rows: Sequence[dict], samples: list[dict], k: int) -> tuple[dict, list[dict]]:
    metrics = summarize(samples, k)
    if k != 1:
        metrics.update({key.replace(f"@{k}", "@1"): value
                        for key, value in summarize(samples, 1).items() if key.startswith("pass@")})
    engine_scores = [x for row in rows for x in row.get("evalscope_scores", []) if isinstance(x, (int, float))]
    if engine_scores:
        metrics["evalscope_acc"] = sum(engine_scores) / len(engine_scores)
    return {key: round(float(value), DECIMALS) for key, value in metrics.items()}, samples


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m motab eval-grade", description=__doc__.splitlines()[0])
    parser.add_argument("--responses", required=True, help="responses JSONL (one problem per line)")
    parser.add_argument("--output", required=True, help="eval JSON to write")
    parser.add_argument("--run", required=True)
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--k", type=int, default=None, help="k of pass@k/avg@k/maj@k (default: n samples)")
    parser.add_argument("--processes", type=int, default=1, help="grading worker processes")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="per-answer grading timeout")
    parser.add_argument("--grader", choices=["math", "multiple_choice"], default="math",
                        help="multiple_choice: the letter of the last \\boxed{} or 'Answer: X' (GPQA-Diamond)")
    parser.add_argument("--remove-until", default=None,
                        help="grade the text after the first occurrence only (EvalScope's filter), e.g. </think>")
    parser.add_argument("--params-json", default="{}", help="config values this output depends on (provenance)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = json.loads(args.params_json)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--params-json: not valid JSON ({exc.msg})")
    if not isinstance(params, dict):
        raise SystemExit(f"--params-json: expected a JSON object, found {type(params).__name__}")
    rows = read_responses(args.responses)
    n = len(rows[0]["responses"])
    k = n if args.k is None else args.k
    if not 1 <= k <= n:
        raise SystemExit(f"--k must be between 1 and the {n} samples per problem, got {k}")
    metrics, samples = score(rows, k, processes=args.processes, timeout_s=args.timeout_s, grader=args.grader,
                             until=args.remove_until)
    write_json(args.output, {"run": args.run, "benchmark": args.benchmark, "seed": args.seed, "n_samples": n,
                             "num_problems": len(rows), "metrics": metrics, "samples": samples,
                             "provenance": provenance(params)})
    shown = ", ".join(f"{key}={value:.4f}" for key, value in sorted(metrics.items()))
    print(f"{args.run}/{args.benchmark}/seed{args.seed}: {len(rows)} problems x {n} samples: {shown}")
    return 0
