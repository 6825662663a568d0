"""Teacher-only synthesis over HTTP against the embedded server: contract, resume, determinism."""

import json

import pytest

from motab.jsonio import read_jsonl, write_jsonl
from motab.synthesis.resume import header_line, resume_key
from motab.synthesis.run import main as synth_main

PARAMS = json.dumps({"num_responses": 2, "temperature": 1.0, "max_new_tokens": 12, "seed": 0, "batch_problems": 2})


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "problems.jsonl"
    write_jsonl(
        path,
        [
            {"id": f"p{i}", "input": f"Compute {i} + 1.", "answer": str(i + 1), "solution": None, "source": "toy"}
            for i in range(5)
        ],
    )
    return path


def run_synth(problems, model, output, log):
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
            PARAMS,
            "--server-log",
            str(log),
        ]
    )


def test_teacher_only_contract_resume_and_determinism(problems, tiny_model_dir, tmp_path):
    first = tmp_path / "a" / "teacher_only.jsonl"
    assert run_synth(problems, tiny_model_dir, first, tmp_path / "a.log") == 0
    rows = read_jsonl(first)
    assert [(r["id"], r["sample"]) for r in rows] == [(f"p{i}", s) for i in range(5) for s in range(2)]
    assert {"id", "sample", "input", "output", "answer_pred", "correct", "stats", "meta"} <= set(rows[0])
    assert rows[0]["stats"]["teacher_tokens"] > 0 and rows[0]["stats"]["student_tokens"] == 0
    assert not first.with_name(first.name + ".partial").exists()

    # A killed run leaves complete rows and a torn last line in .partial; the rerun finishes
    # with exactly one line per (id, sample) and the same bytes as an uninterrupted run.
    second = tmp_path / "b" / "teacher_only.jsonl"
    partial = second.with_name(second.name + ".partial")
    partial.parent.mkdir(parents=True)
    done = [{k: v for k, v in r.items() if k not in ("answer_pred", "correct", "meta")} for r in rows[:3]]
    key = resume_key("teacher_only", json.loads(PARAMS), str(tiny_model_dir), None, problems)
    partial.write_text(header_line(key) + "".join(json.dumps(r) + "\n" for r in done) + '{"id": "p1", "sam')
    assert run_synth(problems, tiny_model_dir, second, tmp_path / "b.log") == 0
    assert second.read_bytes() == first.read_bytes()


@pytest.mark.slow
def test_a_settings_file_gives_the_same_rows_as_the_rules_params_json(problems, tiny_model_dir, tmp_path):
    """`motab synth --config FILE` (the study's synth.teacher_only block as YAML, for a run by hand)
    writes the bytes the workflow's --params-json gives; --params-json keys go over the file's."""
    import yaml

    by_json = tmp_path / "json" / "teacher_only.jsonl"
    assert run_synth(problems, tiny_model_dir, by_json, tmp_path / "json.log") == 0
    config = tmp_path / "teacher_only.yaml"
    config.write_text(yaml.safe_dump(json.loads(PARAMS) | {"temperature": 0.1}))
    by_file = tmp_path / "file" / "teacher_only.jsonl"
    argv = ["--method", "teacher_only", "--problems", str(problems), "--teacher", str(tiny_model_dir)]
    argv += ["--config", str(config), "--params-json", '{"temperature": 1.0}', "--output", str(by_file)]
    assert synth_main([*argv, "--server-log", str(tmp_path / "file.log")]) == 0
    assert by_file.read_bytes() == by_json.read_bytes()
