"""eval-grade on a small handmade responses file: exact metrics, validation, deterministic bytes."""

from __future__ import annotations

import json

import pytest

from motab.evaluation import grade_responses
from motab.jsonio import DataError
from motab.provenance import provenance

ROWS = [  # "b" first: the output is sorted by id
    {
        "id": "b",
        "input": "q2",
        "gold": "7",
        "prompt": "p2",
        "responses": ["#### 7", "nothing", "blah", "The answer is 8."],
    },
    {
        "id": "a",
        "input": "q1",
        "gold": "1/2",
        "prompt": "p1",
        "responses": [r"\boxed{0.5}", r"\boxed{\frac{1}{2}}", "no answer", r"\boxed{3}"],
    },
]


def _write(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            row = dict(row)
            n = len(row.get("responses", []))
            row.setdefault("finish_reasons", ["stop"] * n)
            row.setdefault("completion_tokens", [5] * n)
            handle.write(json.dumps(row) + "\n")
    return path


def _run(tmp_path, *extra, name="E.json"):
    responses = _write(tmp_path / "R.jsonl", ROWS)
    out = tmp_path / name
    rc = grade_responses.main(
        [
            "--responses",
            str(responses),
            "--output",
            str(out),
            "--run",
            "student",
            "--benchmark",
            "toy",
            "--seed",
            "3",
            "--params-json",
            '{"n": 4}',
            *extra,
        ]
    )
    assert rc == 0
    return out


def test_exact_metrics_and_samples(tmp_path):
    out = _run(tmp_path)
    data = json.loads(out.read_text())
    assert data["run"] == "student" and data["benchmark"] == "toy" and data["seed"] == 3
    assert data["n_samples"] == 4 and data["num_problems"] == 2
    assert data["metrics"] == {"pass@4": 1.0, "avg@4": 0.375, "maj@4": 0.5, "pass@1": 0.375, "mean_words": 1.625}
    a, b = data["samples"]
    assert (a["id"], b["id"]) == ("a", "b")
    assert a["preds"] == ["0.5", r"\frac{1}{2}", None, "3"]
    assert a["correct"] == [True, True, False, False]
    assert a["reasons"] == ["correct", "correct", "no_answer", "wrong"]
    assert a["cluster"] == [0, 0, -1, 1]
    assert b["preds"] == ["7", None, None, "8"]
    assert b["cluster"] == [0, -1, -1, 1]  # INVALID wins the vote: maj incorrect
    assert b["gold"] == "7" and b["responses"] == ROWS[0]["responses"]
    assert data["provenance"] == provenance({"n": 4})


def test_k_smaller_than_n(tmp_path):
    data = json.loads(_run(tmp_path, "--k", "2").read_text())
    assert data["metrics"] == {"pass@2": 0.666667, "avg@2": 0.375, "maj@2": 1.0, "pass@1": 0.375, "mean_words": 1.625}


def test_deterministic_bytes(tmp_path):
    first = _run(tmp_path, name="one.json").read_bytes()
    second = _run(tmp_path, "--processes", "2", name="two.json").read_bytes()
    assert first == second
    assert first.endswith(b"\n")


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r.pop("responses"), "responses"),
        (lambda r: r.update(gold=None), "gold"),
        (lambda r: r.update(responses=["a", 3, "c", "d"]), "responses[1]"),
        (lambda r: r.update(finish_reasons=["stop"]), "finish_reasons"),
        (lambda r: r.update(responses=["a", "b"], finish_reasons=["s"] * 2, completion_tokens=[1, 1]), "responses"),
        (lambda r: r.update(id="b"), "id"),
    ],
)
def test_bad_line_names_file_line_field(tmp_path, mutate, field):
    rows = [dict(ROWS[0]), dict(ROWS[1])]
    mutate(rows[1])
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as info:
        grade_responses.read_responses(path)
    assert info.value.line == 2 and info.value.field == field
    assert str(info.value).startswith(f"{path}:2:{field}: ")


def test_cli_entry(tmp_path, capsys):
    from motab.cli import main

    responses = _write(tmp_path / "R.jsonl", ROWS)
    assert (
        main(
            [
                "eval-grade",
                "--responses",
                str(responses),
                "--output",
                str(tmp_path / "E.json"),
                "--run",
                "r",
                "--benchmark",
                "b",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    assert "avg@4=0.3750" in capsys.readouterr().out
