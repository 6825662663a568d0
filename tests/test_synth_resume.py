"""A synthesis rerun resumes only rows made with its own settings: a changed parameter,
model or problems file stops it at start, naming the change and the file to remove; so do rows of
ids no longer among the problems (before any server starts, not after all generation)."""

import json

import pytest

from motab.jsonio import write_jsonl
from motab.synthesis.resume import header_line, resume_key
from motab.synthesis.run import main as synth_main

PARAMS = {"num_responses": 2, "temperature": 1.0, "max_new_tokens": 12, "seed": 0, "batch_problems": 2}


@pytest.fixture()
def problems(tmp_path):
    path = tmp_path / "problems.jsonl"
    write_jsonl(
        path,
        [
            {"id": f"p{i}", "input": f"Compute {i} + 1.", "answer": str(i + 1), "solution": None, "source": "toy"}
            for i in range(3)
        ],
    )
    return path


def row(problem_id: str, sample: int) -> dict:
    return {
        "id": problem_id,
        "sample": sample,
        "input": "x",
        "output": "\\boxed{1}",
        "stats": {"teacher_tokens": 3, "student_tokens": 0},
    }


def synth(problems, model, output, params: dict):
    return synth_main(
        [
            "--method",
            "teacher_only",
            "--problems",
            str(problems),
            "--teacher",
            str(model),
            "--output",
            str(output),
            "--params-json",
            json.dumps(params),
            "--server-log",
            str(output.parent / "server.log"),
        ]
    )


def killed_run(tmp_path, problems, model, params: dict, rows: list[dict]):
    """The output path and the .partial a killed run with `params` left behind."""
    output = tmp_path / "out" / "teacher_only.jsonl"
    partial = output.with_name(output.name + ".partial")
    partial.parent.mkdir()
    key = resume_key("teacher_only", params, str(model), None, problems)
    partial.write_text(header_line(key) + "".join(json.dumps(r) + "\n" for r in rows))
    return output, partial


@pytest.mark.parametrize("change", [{"max_new_tokens": 16}, {"temperature": 0.6}, {"seed": 1}])
def test_a_changed_parameter_stops_the_rerun_naming_it(tmp_path, problems, tiny_model_dir, change):
    output, partial = killed_run(tmp_path, problems, tiny_model_dir, PARAMS, [row("p0", 0), row("p0", 1)])
    with pytest.raises(SystemExit) as stop:
        synth(problems, tiny_model_dir, output, PARAMS | change)
    ((name, value),) = change.items()
    message = str(stop.value)
    assert f"params.{name}: {json.dumps(PARAMS[name])} -> {json.dumps(value)}" in message
    assert f"remove {partial}" in message
    assert not output.exists() and not (output.parent / "server.log").exists()  # stopped before any server


def test_a_changed_problems_file_or_model_stops_the_rerun(tmp_path, problems, tiny_model_dir):
    output, partial = killed_run(tmp_path, problems, tiny_model_dir, PARAMS, [row("p0", 0)])
    with open(problems, "a") as handle:
        handle.write(
            json.dumps({"id": "p9", "input": "Compute 9 + 1.", "answer": "10", "solution": None, "source": "toy"})
            + "\n"
        )
    with pytest.raises(SystemExit, match=rf"problems \({problems}\) sha256: .*remove {partial}"):
        synth(problems, tiny_model_dir, output, PARAMS)


def test_rows_of_ids_gone_from_the_problems_are_an_error_at_start(tmp_path, problems, tiny_model_dir):
    output, partial = killed_run(tmp_path, problems, tiny_model_dir, PARAMS, [row("p0", 0), row("gone7", 0)])
    with pytest.raises(SystemExit, match=rf"ids not among the problems of {problems}: gone7 .*remove {partial}"):
        synth(problems, tiny_model_dir, output, PARAMS)
    assert not (output.parent / "server.log").exists()


def test_a_partial_without_a_key_is_not_trusted(tmp_path, problems, tiny_model_dir):
    output = tmp_path / "out" / "teacher_only.jsonl"
    partial = output.with_name(output.name + ".partial")
    partial.parent.mkdir()
    partial.write_text(json.dumps(row("p0", 0)) + "\n")
    with pytest.raises(SystemExit, match=rf"without a resume key .*remove {partial}"):
        synth(problems, tiny_model_dir, output, PARAMS)
