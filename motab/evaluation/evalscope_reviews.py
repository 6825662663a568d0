"""EvalScope's per-sample reviews read back and grouped by problem into the native responses rows.

EvalScope 1.14 writes, per run, reviews/<model>/<dataset>_*.jsonl (the chat messages, the sample's
score and extracted answer) and predictions/<model>/<dataset>_*.jsonl (the finish reasons); the
samples are matched to the benchmark's problems by the problem text in the prompt. Used by
`motab.evaluation.evalscope_engine` (which re-exports these names).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from motab.jsonio import DataError, iter_jsonl


def _text(content) -> str:
    """Message content as text: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return "" if content is None else str(content)


def review_files(work_dir: str | os.PathLike, dataset: str) -> list[Path]:
    root = Path(work_dir) / "reviews"
    files = sorted(p for p in root.rglob(f"{dataset}_*.jsonl") if ".rerun-" not in p.name)
    if not files:
        found = sorted(str(p.relative_to(work_dir)) for p in Path(work_dir).rglob("*.jsonl"))
        raise DataError(root, None, None, f"no EvalScope reviews {dataset}_*.jsonl (files: {found[:10]})")
    return files


def _finish_reasons(review_file: Path) -> dict[int, str]:
    """{sample index: finish reason} from the predictions file beside a reviews file ("length" / "stop")."""
    parts = review_file.parts
    predictions = Path(*parts[:-3], "predictions", *parts[-2:])
    reasons: dict[int, str] = {}
    if predictions.is_file():
        for _, row in iter_jsonl(predictions):
            choices = (row.get("model_output") or {}).get("choices") or [{}]
            stop = choices[0].get("stop_reason")
            if isinstance(row.get("index"), int) and stop:
                reasons[row["index"]] = {"max_tokens": "length", "model_length": "length"}.get(stop, stop)
    return reasons


def read_reviews(files: list[Path], repeat: int = 0) -> list[dict]:
    """[{"repeat", "index", "prompt", "response", "score", "pred", "finish", "tokens", "where"}] from
    EvalScope review files (EvalScope 1.14: messages, sample_score.score.{value, extracted_prediction})."""
    out = []
    for path in files:
        finish = _finish_reasons(path)
        for line, row in iter_jsonl(path):
            messages = row.get("messages")
            if not isinstance(messages, list) or not messages:
                raise DataError(path, line, "messages", "expected the chat messages of the sample")
            user = [_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            assistant = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
            if not user:
                raise DataError(path, line, "messages", "no user message")
            score = row.get("sample_score") or {}
            inner = score.get("score") or {}
            value = inner.get("value") if isinstance(inner, dict) else None
            if isinstance(value, dict):  # {"acc": 1.0}
                value = value.get(inner.get("main_score_name") or "acc", next(iter(value.values()), None))
            index = row.get("index", score.get("sample_id"))
            if not isinstance(index, int) or isinstance(index, bool):
                raise DataError(path, line, "index", f"expected the sample index, found {index!r}")
            perf = (assistant[-1].get("perf_metrics") or {}) if assistant else {}
            out.append(
                {
                    "repeat": repeat,
                    "index": index,
                    "prompt": user[-1],
                    "response": _text(assistant[-1].get("content")) if assistant else "",
                    "score": float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
                    "pred": inner.get("extracted_prediction") if isinstance(inner, dict) else None,
                    "finish": finish.get(index, "unknown"),
                    "tokens": int(perf.get("output_tokens") or 0),
                    "where": f"{path}:{line}",
                }
            )
    return out


def to_responses(reviews: list[dict], problems: list[dict], n: int) -> list[dict]:
    """Group EvalScope samples by problem (matched by problem text in the prompt) into response rows."""
    by_problem: dict[str, list[dict]] = defaultdict(list)
    inputs = sorted(((p["input"].strip(), p) for p in problems), key=lambda item: -len(item[0]))
    for review in reviews:
        match = next((p for text, p in inputs if text and text in review["prompt"]), None)
        if match is None:
            raise DataError(
                review["where"].rsplit(":", 1)[0],
                int(review["where"].rsplit(":", 1)[1]),
                "messages",
                f"prompt matches no problem of the benchmark file: {review['prompt'][:80]!r}",
            )
        by_problem[match["id"]].append(review)
    rows = []
    for problem in problems:
        samples = sorted(by_problem.get(problem["id"], []), key=lambda r: (r.get("repeat", 0), r["index"]))
        if not samples:
            continue  # not evaluated (EvalScope's --limit)
        if len(samples) != n:
            raise DataError(
                samples[0]["where"],
                None,
                None,
                f"problem {problem['id']!r}: expected {n} EvalScope samples (one per run), found {len(samples)}",
            )
        rows.append(
            {
                "id": problem["id"],
                "input": problem["input"],
                "gold": problem["answer"],
                "prompt": samples[0]["prompt"],
                "responses": [s["response"] for s in samples],
                "finish_reasons": [s["finish"] for s in samples],
                "completion_tokens": [s["tokens"] for s in samples],
                "evalscope": {"scores": [s["score"] for s in samples], "preds": [s["pred"] for s in samples]},
            }
        )
    if not rows:
        raise DataError("reviews", None, None, "no EvalScope sample matched a problem")
    return rows
