"""Training sets in their public releases' fields (GSM8K train, DeepMath-103K, OpenThoughts3-1.2M,
OPSD's prompt set) become problems.jsonl; a bad line names file:line:field; SFT on a set's own
solutions. The fixtures are a few rows each in the releases' own format (the sets are not shipped)."""

import json
from pathlib import Path

import pytest

from motab.data.prepare import load_rows
from motab.data.prepare import main as prepare_main
from motab.data.reorganize import main as reorganize_main
from motab.jsonio import DataError, read_jsonl

FIXTURES = Path(__file__).parent / "fixtures" / "train_sets"


def prepare(tmp_path, fmt: str, path: Path) -> list[dict]:
    out = tmp_path / "problems.jsonl"
    assert prepare_main(["--input", str(path), "--source", fmt, "--format", fmt, "--output", str(out)]) == 0
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == sorted({r["id"] for r in rows})
    assert all(set(r) == {"id", "input", "answer", "solution", "source"} and r["source"] == fmt for r in rows)
    return rows


def test_deepmath_rows_keep_the_final_answer_and_r1s_first_solution(tmp_path):
    raw = read_jsonl(FIXTURES / "deepmath.jsonl")
    rows = prepare(tmp_path, "deepmath", FIXTURES / "deepmath.jsonl")
    assert [r["input"] for r in rows] == [r["question"] for r in raw]
    assert [r["answer"] for r in rows] == ["3", "24", "Yes"]
    assert [r["solution"] for r in rows] == [r["r1_solution_1"] for r in raw]
    assert rows[0]["id"] == "deepmath-0000000"


def test_openthoughts3_rows_are_the_human_turn_and_the_traced_answer(tmp_path):
    raw = read_jsonl(FIXTURES / "openthoughts3.jsonl")
    rows = prepare(tmp_path, "openthoughts3", FIXTURES / "openthoughts3.jsonl")
    assert [r["input"] for r in rows] == [r["conversations"][0]["value"] for r in raw]
    assert [r["solution"] for r in rows] == [r["conversations"][1]["value"] for r in raw]
    assert [r["answer"] for r in rows] == ["3", "", "1"]  # the code row has no boxed answer


def test_opsd_rows_take_the_answer_from_the_solutions_box(tmp_path):
    rows = prepare(tmp_path, "opsd", FIXTURES / "opsd.jsonl")
    assert [r["answer"] for r in rows] == ["720", "15", "4"]
    assert all(r["solution"].endswith(("}.", "}$.")) for r in rows)


def test_gsm8k_train_solutions_keep_their_answer_line(shared_data):
    rows = load_rows(str(shared_data / "gsm8k" / "train.jsonl"), "gsm8k_train", "gsm8k")
    assert len(rows) == 7473
    first = rows[0]
    assert first["id"] == "gsm8k_train-0000000" and first["answer"] == "72"
    assert first["solution"].endswith("#### 72")  # SFT on it teaches GSM8K's answer format


BAD_ROWS = [
    (
        "deepmath",
        {
            "question": "q",
            "difficulty": 1.0,
            "topic": "t",
            "r1_solution_1": "s",
            "r1_solution_2": "s",
            "r1_solution_3": "s",
        },
        "final_answer",
    ),
    (
        "deepmath",
        {
            "question": "q",
            "final_answer": "1",
            "difficulty": "hard",
            "topic": "t",
            "r1_solution_1": "s",
            "r1_solution_2": "s",
            "r1_solution_3": "s",
        },
        "difficulty",
    ),
    (
        "deepmath",
        {
            "question": "q",
            "final_answer": "1",
            "difficulty": 1,
            "topic": "t",
            "r1_solution_1": "s",
            "r1_solution_2": "s",
        },
        "r1_solution_3",
    ),
    ("openthoughts3", {"difficulty": 1, "conversations": "q"}, "conversations"),
    (
        "openthoughts3",
        {"difficulty": 1, "conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]},
        "conversations[1]",
    ),
    ("openthoughts3", {"difficulty": 1, "conversations": [{"from": "human", "value": "q"}]}, "conversations"),
    ("opsd", {"problem": "q"}, "solution"),
    ("opsd", {"problem": "q", "solution": "no box here"}, "solution"),
    ("opsd", {"problem": "", "solution": "\\boxed{1}"}, "problem"),
]


@pytest.mark.parametrize("fmt, row, field", BAD_ROWS)
def test_a_bad_row_names_file_line_and_field(tmp_path, fmt, row, field):
    path = tmp_path / f"{fmt}.jsonl"
    good = (FIXTURES / f"{fmt}.jsonl").read_text()
    path.write_text(good + json.dumps(row) + "\n")
    line = good.count("\n") + 1
    with pytest.raises(DataError) as info:
        load_rows(str(path), fmt, fmt)
    assert (info.value.line, info.value.field) == (line, field)
    assert str(info.value).startswith(f"{path}:{line}:{field}: ")


def test_sft_on_a_train_sets_own_solutions(tmp_path):
    problems = tmp_path / "problems.jsonl"
    assert (
        prepare_main(
            ["--input", str(FIXTURES / "opsd.jsonl"), "--source", "opsd", "--format", "opsd", "--output", str(problems)]
        )
        == 0
    )
    assert (
        reorganize_main(
            ["--problems", str(problems), "--output-dir", str(tmp_path / "sft"), "--dataset-name", "train-data"]
        )
        == 0
    )
    sft = read_jsonl(tmp_path / "sft" / "train.jsonl")
    assert [r["output"] for r in sft] == [r["solution"] for r in read_jsonl(problems)]
    assert json.loads((tmp_path / "sft" / "dataset_info.json").read_text())["train-data"]["file_name"] == "train.jsonl"
    problems.write_text(
        problems.read_text()
        + json.dumps({"id": "z", "input": "q", "answer": "1", "solution": None, "source": "opsd"})
        + "\n"
    )
    with pytest.raises(DataError, match=r"problems.jsonl:4:solution: SFT on a training set needs"):
        reorganize_main(
            ["--problems", str(problems), "--output-dir", str(tmp_path / "sft2"), "--dataset-name", "train-data"]
        )
