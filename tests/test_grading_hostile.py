"""Grading hostile inputs: a verdict for every line, whatever it holds, in bounded time.

Numbers of 4,301+ digits (Python's int-string limit) as pred or gold, 5,000-digit JSON integer golds,
1 MB repetition loops, braces nested 5,000 deep and power towers, through every path that grades:
`grade`, `eval-grade`, synthesis `finalize` and `synth-filter`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from dryrun import REPO

from motab.data.train_formats import last_boxed as train_last_boxed
from motab.evaluation.grade_responses import main as eval_grade_main
from motab.grading import equivalence
from motab.grading.equivalence import grade_many
from motab.grading.extraction import MODES, extract_answer
from motab.jsonio import DataError, read_jsonl, write_jsonl
from motab.synthesis.cot_filter import main as filter_main
from motab.synthesis.run import finalize

GIANT = "7" * 5000
TOWER = "9^{9^{9^{9^{9^{9}}}}}"


@contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging for an hour) when the block runs longer than `seconds`."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_numbers_past_the_int_string_limit_get_verdicts():
    grades = grade_many(
        [
            (GIANT, GIANT),
            (GIANT, "7"),
            ("7", GIANT),
            ("0" + GIANT, GIANT + ".000"),
            ("-" + "1" * 4301, "-" + "1" * 4301),
        ],
        processes=1,
        timeout_s=2,
    )
    assert [g.reason for g in grades] == ["correct", "wrong", "wrong", "correct", "correct"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("unit", ["\\boxed{", "{", "\\boxed ", "#### ", "The answer is ", "A: \n", "1,"])
def test_extraction_of_a_1mb_repetition_loop_is_fast(mode, unit):
    text = unit * (1_000_000 // len(unit))
    with deadline(5):  # quadratic extraction took 54 s on 112 KB of "\boxed{"
        extract_answer(text, mode)


def test_train_formats_last_boxed_is_linear():
    with deadline(5):
        assert train_last_boxed("\\boxed{" * 150_000) is None
    assert train_last_boxed("\\boxed{" * 1000 + "\\boxed{4}") == "4"


def test_deeply_nested_json_line_is_a_located_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"id": 1}\n' + '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    with pytest.raises(DataError, match=r"deep.jsonl:2: JSON nested too deeply"):
        read_jsonl(path)


def test_json_integer_gold_of_5000_digits_is_read(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text(f'{{"id": "p0", "answer": {GIANT}}}\n')
    assert read_jsonl(path) == [{"id": "p0", "answer": GIANT}]


def hostile_lines() -> list[dict]:
    return [
        {"id": "giant-gold", "response": f"so \\boxed{{{GIANT}}}", "gold": int(GIANT[:4000])},
        {"id": "giant-pred", "response": f"so \\boxed{{{GIANT}}}", "gold": "7"},
        {"id": "loop", "response": "\\boxed{" * 150_000, "gold": "3"},
        {"id": "nested", "response": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}", "gold": "1"},
        {"id": "tower", "response": f"\\boxed{{{TOWER}}}", "gold": "5"},
        {"id": "ok", "response": "The answer is $\\frac{1}{2}$.", "gold": "0.5"},
    ]


def test_grade_cli_gives_a_verdict_per_hostile_line_in_bounded_time(tmp_path):
    lines = hostile_lines()
    src = tmp_path / "in.jsonl"
    with open(src, "w", encoding="utf-8") as handle:
        for row in lines:
            handle.write(json.dumps(row) + "\n")
        # a 5,000-digit JSON integer gold: json.loads refused it before
        handle.write(f'{{"id": "json-giant", "response": "#### {GIANT}", "gold": {GIANT}}}\n')
    timeout_s = 1.0
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "motab",
            "grade",
            "--input",
            str(src),
            "--output",
            str(tmp_path / "out.jsonl"),
            "--timeout-s",
            str(timeout_s),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = {row["id"]: row for row in read_jsonl(tmp_path / "out.jsonl")}
    assert len(out) == len(lines) + 1
    assert out["giant-gold"]["reason"] == "wrong" and out["giant-pred"]["reason"] == "wrong"
    assert out["json-giant"]["reason"] == "correct" and out["ok"]["reason"] == "correct"
    assert out["loop"]["reason"] == "no_answer" and out["tower"]["reason"] == "timeout"
    assert out["nested"]["reason"] in equivalence.REASONS
    # lines x (timeout + the hard-kill grace) + start-up (imports, worker) as the small constant
    assert elapsed < (len(lines) + 1) * (timeout_s + equivalence.HARD_GRACE_S) + 15


def test_eval_grade_gives_verdicts_for_hostile_responses(tmp_path):
    rows = [
        {
            "id": "p0",
            "input": "q",
            "prompt": "q",
            "gold": GIANT,
            "responses": [f"\\boxed{{{GIANT}}}", "\\boxed{" * 150_000, f"\\boxed{{{TOWER}}}", "\\boxed{7}"],
            "finish_reasons": ["stop"] * 4,
            "completion_tokens": [1] * 4,
        }
    ]
    write_jsonl(tmp_path / "responses.jsonl", rows)
    with deadline(60):
        assert (
            eval_grade_main(
                [
                    "--responses",
                    str(tmp_path / "responses.jsonl"),
                    "--output",
                    str(tmp_path / "eval.json"),
                    "--run",
                    "r",
                    "--benchmark",
                    "b",
                    "--seed",
                    "0",
                    "--timeout-s",
                    "1",
                ]
            )
            == 0
        )
    sample = json.loads((tmp_path / "eval.json").read_text())["samples"][0]
    assert sample["correct"] == [True, False, False, False]
    assert sample["reasons"][:2] == ["correct", "no_answer"] and sample["reasons"][3] == "wrong"


def test_maj_clustering_pays_one_timeout_per_slow_answer():
    """A power tower among several distinct answers: it is compared with gold once (timeout) and then
    with nothing, instead of once per pair of distinct answers."""
    from motab.evaluation.grade_responses import score

    responses = [f"\\boxed{{{TOWER}}}"] + [f"\\boxed{{{i}}}" for i in range(1, 9)]
    rows = [{"id": "p0", "gold": "5", "responses": responses}]
    timeout_s = 1.0
    start = time.monotonic()
    metrics, samples = score(rows, k=len(responses), processes=1, timeout_s=timeout_s)
    elapsed = time.monotonic() - start
    assert samples[0]["reasons"][0] == "timeout" and samples[0]["cluster"] == list(range(9))
    assert elapsed < timeout_s + equivalence.HARD_GRACE_S + 2.5  # was 9 timeouts (tower x gold + 8 pairs)


def test_synthesis_finalize_grades_hostile_outputs(tmp_path):
    outputs = [f"\\boxed{{{GIANT}}}", "\\boxed{" * 150_000, f"so \\boxed{{{TOWER}}}"]
    rows = [
        {"id": f"p{i}", "sample": 0, "input": "q", "output": out, "stats": {"teacher_tokens": 1, "student_tokens": 0}}
        for i, out in enumerate(outputs)
    ]
    write_jsonl(tmp_path / "partial.jsonl", rows)
    problems = [{"id": "p0", "answer": GIANT}, {"id": "p1", "answer": "3"}, {"id": "p2", "answer": "5"}]
    with deadline(60):
        finalize(tmp_path / "partial.jsonl", tmp_path / "out.jsonl", problems, "teacher_only", None, {})
    done = read_jsonl(tmp_path / "out.jsonl")
    assert [row["correct"] for row in done] == [True, False, False]


def test_synth_filter_grades_a_json_integer_gold_of_5000_digits(tmp_path):
    (tmp_path / "problems.jsonl").write_text(f'{{"id": "p0", "answer": {GIANT}}}\n{{"id": "p1", "answer": 4}}\n')
    rows = [
        {
            "id": "p0",
            "sample": 0,
            "input": "q",
            "output": f"So the result is \\boxed{{{GIANT}}}",
            "stats": {"teacher_tokens": 1, "student_tokens": 0},
        },
        {
            "id": "p1",
            "sample": 0,
            "input": "q",
            "output": "So the result is " + "\\boxed{" * 2000,
            "stats": {"teacher_tokens": 1, "student_tokens": 0},
        },
    ]
    write_jsonl(tmp_path / "synth.jsonl", rows)
    params = {"banned": [], "max_words": None, "ngram": 4, "max_ngram_repeats": 100000}
    with deadline(60):
        assert (
            filter_main(
                [
                    "--input",
                    str(tmp_path / "synth.jsonl"),
                    "--gold",
                    str(tmp_path / "problems.jsonl"),
                    "--output",
                    str(tmp_path / "kept.jsonl"),
                    "--counts",
                    str(tmp_path / "counts.json"),
                    "--params-json",
                    json.dumps(params),
                ]
            )
            == 0
        )
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["kept"] == 1 and counts["dropped"]["no_answer"] == 1
