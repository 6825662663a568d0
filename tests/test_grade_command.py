"""`motab grade` on a small handmade {id, response, gold} file: verdicts in input order, the summary,
and a located error for a bad line."""

from __future__ import annotations

import json

import pytest

from motab.grading import grade_command
from motab.jsonio import DataError


def test_grade_file(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": 2, "response": r"so \boxed{\dfrac12}", "gold": "0.5"},
                {"id": "x", "response": "The answer is 3.", "gold": -3},
                {"id": "y", "response": "I give up", "gold": "4"},
                {"id": "z", "response": None, "gold": 27.0},
            ]
        )
        + "\n"
    )
    out = tmp_path / "out.jsonl"
    assert grade_command.main(["--input", str(src), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"id": 2, "pred": r"\dfrac12", "correct": True, "reason": "correct"},
        {"id": "x", "pred": "3", "correct": False, "reason": "wrong"},
        {"id": "y", "pred": None, "correct": False, "reason": "no_answer"},
        {"id": "z", "pred": None, "correct": False, "reason": "no_answer"},
    ]
    summary = capsys.readouterr().out
    assert "n=4" in summary and "accuracy=0.2500" in summary


def test_grade_file_bad_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": 1, "response": "x", "gold": "1"}) + "\n" + json.dumps({"id": 2, "gold": "1"}) + "\n"
    )
    with pytest.raises(DataError, match=r"in\.jsonl:2:response: missing field"):
        grade_command.main(["--input", str(src), "--output", str(tmp_path / "o.jsonl")])
