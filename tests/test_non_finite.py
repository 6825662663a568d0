"""NaN, Infinity and 1e999 are no JSON numbers: `benchmark`, `prepare` and `grade` refuse them with
file:line:field (as the embedded server refuses them) instead of grading against a gold "nan"."""

from __future__ import annotations

import subprocess
import sys

import pytest

LINES = [
    '{"id": "a", "problem": "1+1?", "answer": "2"}',
    '{"id": "b", "problem": "0/0?", "answer": NaN}',
]


def motab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "motab", *args], capture_output=True, text=True, timeout=120)


def refused(result: subprocess.CompletedProcess, where: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and where in lines[0] and "not a finite number" in lines[0], result.stderr


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_benchmark_refuses_a_non_finite_answer(tmp_path, constant):
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join(LINES).replace("NaN", constant) + "\n")
    result = motab(
        "benchmark",
        "--input",
        str(path),
        "--format",
        "generic",
        "--name",
        "b",
        "--question-field",
        "problem",
        "--output",
        str(tmp_path / "out.jsonl"),
    )
    refused(result, f"{path}:2:answer")
    assert not (tmp_path / "out.jsonl").exists()


def test_prepare_refuses_a_non_finite_answer(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"question": "q", "solution": "s", "answer": Infinity}\n')
    result = motab("prepare", "--input", str(path), "--source", "t", "--output", str(tmp_path / "out.jsonl"))
    refused(result, f"{path}:1:answer")


def test_grade_refuses_a_non_finite_gold_and_names_nested_fields(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"id": "a", "response": "\\\\boxed{1}", "gold": "1"}\n{"id": "b", "response": "x", "gold": NaN}\n')
    refused(motab("grade", "--input", str(path), "--output", str(tmp_path / "g.jsonl")), f"{path}:2:gold")
    path.write_text('{"id": "a", "response": "x", "gold": "1", "meta": {"scores": [1.0, -Infinity]}}\n')
    refused(motab("grade", "--input", str(path), "--output", str(tmp_path / "g.jsonl")), f"{path}:1:meta.scores[1]")


def test_finite_numbers_still_read():
    from motab.jsonio import loads_finite

    assert loads_finite('{"a": 1.5e3, "b": [27.0, -1e-300]}', "f") == {"a": 1500.0, "b": [27.0, -1e-300]}
