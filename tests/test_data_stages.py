"""prepare, kd-prompts and reorganize: file contracts and errors that name file:line:field."""

import json

import pytest

from motab.data.kd_prompts import to_prompts
from motab.data.prepare import main as prepare_main
from motab.data.prepare import normalize_rows
from motab.data.reorganize import main as reorganize_main
from motab.jsonio import DataError, read_jsonl, write_jsonl


def test_math500_rows_reshaped_as_limo_are_normalised(tmp_path, shared_data):
    # LIMO itself is not on this machine; MATH-500 rows reshaped as LIMO rows stand in.
    limo = [
        {"question": r["problem"], "solution": r["solution"], "answer": r["answer"]}
        for r in read_jsonl(shared_data / "math500" / "test.jsonl")[:40]
    ]
    write_jsonl(tmp_path / "limo.jsonl", limo)
    out = tmp_path / "problems.jsonl"
    assert prepare_main(["--input", str(tmp_path / "limo.jsonl"), "--source", "limo", "--output", str(out)]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert len({r["id"] for r in rows}) == 40
    assert set(rows[0]) == {"id", "input", "answer", "solution", "source"}
    assert rows[0]["source"] == "limo"


def test_benchmark_files_with_their_own_field_names(shared_data):
    rows = normalize_rows(str(shared_data / "amc23" / "test.jsonl"), "amc23", question_field="problem")
    assert len(rows) == 40
    assert not any(r["answer"].endswith(".0") for r in rows)  # AMC stores 27.0 for 27
    gsm = normalize_rows(str(shared_data / "gsm8k" / "test.jsonl"), "gsm8k", answer_field="answer", limit=5)
    assert len(gsm) == 5


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"question": "", "answer": "1"}', "question"),
        ('{"question": "q", "solution": "s"}', "answer"),
        ('{"question": "q", "answer": "1", "solution": 3}', "solution"),
        ('{"question": "q", "answer": null}', "answer"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, field):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"question": "ok", "answer": "2"}\n' + line + "\n")
    with pytest.raises(DataError) as err:
        normalize_rows(str(path), "x")
    assert str(err.value).startswith(f"{path}:2:{field}:")


def test_invalid_json_and_duplicate_ids(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"question": "a", "answer": "1"}\n{not json\n')
    with pytest.raises(DataError, match=r"raw.jsonl:2: not valid JSON"):
        normalize_rows(str(path), "x")
    path.write_text('{"id": "p", "question": "a", "answer": "1"}\n{"id": "p", "question": "b", "answer": "2"}\n')
    with pytest.raises(DataError, match=r"raw.jsonl:2:id: duplicate id 'p'"):
        normalize_rows(str(path), "x")


def test_kd_prompts_deduplicate_and_keep_the_solution(tmp_path):
    problems = [
        {"id": f"p{i}", "input": q, "answer": "1", "solution": f"sol {i}", "source": "t"}
        for i, q in enumerate(["a", "b", "a"])
    ]
    write_jsonl(tmp_path / "p.jsonl", problems)
    prompts = to_prompts(str(tmp_path / "p.jsonl"), deduplicate=True)
    assert [p["id"] for p in prompts] == ["p0", "p1"]
    assert prompts[0]["messages"] == [{"role": "user", "content": "a"}]
    assert prompts[0]["solution"] == "sol 0"
    assert len(to_prompts(str(tmp_path / "p.jsonl"), deduplicate=False)) == 3


def test_kd_prompts_as_prepare_onpolicy_data(tmp_path):
    """The release's prepare_onpolicy_data.py: the question stripped, duplicates (after stripping)
    dropped, then at most max_samples kept."""
    problems = [
        {"id": f"p{i}", "input": q, "answer": "1", "solution": None, "source": "t"}
        for i, q in enumerate(["  a \n", "b", "a", "c"])
    ]
    write_jsonl(tmp_path / "p.jsonl", problems)
    prompts = to_prompts(str(tmp_path / "p.jsonl"), deduplicate=True, max_samples=2)
    assert [(p["id"], p["messages"][0]["content"]) for p in prompts] == [("p0", "a"), ("p1", "b")]


def test_reorganize_writes_alpaca_and_dataset_info_keeping_selection_to_the_filter(tmp_path):
    synth = [
        {"id": "a", "sample": 0, "input": "Q1", "output": "S1", "correct": True},
        {"id": "a", "sample": 1, "input": "Q1", "output": "bad", "correct": False},
        {"id": "b", "sample": 0, "input": "Q2", "output": "S2", "correct": None},
    ]
    write_jsonl(tmp_path / "s.jsonl", synth)
    assert (
        reorganize_main(
            [
                "--input",
                str(tmp_path / "s.jsonl"),
                "--output-dir",
                str(tmp_path / "all"),
                "--dataset-name",
                "teacher_only",
            ]
        )
        == 0
    )
    assert [r["output"] for r in read_jsonl(tmp_path / "all" / "train.jsonl")] == ["S1", "bad", "S2"]
    assert (
        reorganize_main(
            [
                "--input",
                str(tmp_path / "s.jsonl"),
                "--output-dir",
                str(tmp_path / "out"),
                "--dataset-name",
                "teacher_only",
                "--drop-incorrect",
            ]
        )
        == 0
    )
    assert read_jsonl(tmp_path / "out" / "train.jsonl") == [
        {"instruction": "Q1", "input": "", "output": "S1"},
        {"instruction": "Q2", "input": "", "output": "S2"},
    ]
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["teacher_only"]["file_name"] == "train.jsonl"
    assert info["teacher_only"] == {
        "file_name": "train.jsonl",
        "columns": {"prompt": "instruction", "response": "output"},
    }  # the release's
