"""Benchmark loaders on the real files in ../shared/data: fields, counts, gold answers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from motab.data.benchmarks import load_benchmark
from motab.data.benchmarks import main as benchmark_main
from motab.jsonio import DataError, read_jsonl

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def _load(shared_data_config, name: str) -> list[dict]:
    """config.yaml's benchmark entry with the tests' data folder in place of the hub id
    (tests/configs/shared_data.yaml): the user's catalogue entry read from the real file."""
    override = yaml.safe_load(shared_data_config.read_text())["benchmarks"][name]
    bench = CONFIG["benchmarks"][name] | override
    return load_benchmark(bench["path"], bench["format"], name, bench["count"])


@pytest.mark.parametrize(
    "name, count", [("math500", 500), ("aime24", 30), ("aime25", 30), ("amc23", 40), ("gsm8k", 1319)]
)
def test_real_files_load_with_config_counts(shared_data_config, name, count):
    rows = _load(shared_data_config, name)
    assert len(rows) == count == CONFIG["benchmarks"][name]["count"]
    assert [r["id"] for r in rows] == sorted({r["id"] for r in rows})
    assert all(set(r) == {"id", "input", "answer", "solution", "source"} for r in rows)
    assert all(r["input"] and r["answer"] and r["source"] == name for r in rows)


def test_formats_read_each_release_its_own_way(shared_data_config):
    math500 = {r["id"]: r for r in _load(shared_data_config, "math500")}
    assert math500["test/precalculus/807.json"]["answer"] == r"\left( 3, \frac{\pi}{2} \right)"
    aime24 = _load(shared_data_config, "aime24")
    assert {r["id"] for r in aime24} == {str(i) for i in range(60, 90)}  # ids from the file
    assert all(r["answer"].isdigit() for r in aime24 + _load(shared_data_config, "aime25"))
    assert _load(shared_data_config, "aime25")[0]["id"] == "aime25-00000"  # no id field: line-based ids
    amc = _load(shared_data_config, "amc23")
    assert not any(r["answer"].endswith(".0") for r in amc)  # AMC stores 27.0 for 27
    gsm = {r["id"]: r for r in _load(shared_data_config, "gsm8k")}
    first = gsm["gsm8k-00000"]
    assert (
        first["answer"] == "18"
        and "####" not in first["solution"]
        and first["solution"].endswith("18 every day at the farmer’s market.")
    )
    assert all("," not in r["answer"] for r in gsm.values())  # "#### 1,234" -> "1234"


def test_count_mismatch_names_file_and_line(shared_data, tmp_path):
    lines = (shared_data / "aime25" / "test.jsonl").read_text().splitlines()[:29]
    path = tmp_path / "aime25.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"aime25\.jsonl:29: expected 30 aime25 problems \(config `count`\), found 29"):
        load_benchmark(path, "aime", "aime25", count=30)


@pytest.mark.parametrize(
    "fmt, row, field",
    [
        ("math500", {"problem": "p", "answer": "1", "solution": "s", "subject": "x", "level": 1}, "unique_id"),
        ("aime", {"problem": "p", "answer": "twelve"}, "answer"),
        ("aime", {"problem": "", "answer": "12"}, "problem"),
        ("amc23", {"id": 0, "problem": "p", "answer": None}, "answer"),
        ("gsm8k", {"question": "q", "answer": "so the answer is 5"}, "answer"),
        ("gsm8k", {"answer": "x\n#### 5"}, "question"),
        ("hmmt25", {"problem_idx": 1, "problem": "p"}, "answer"),
    ],
)
def test_bad_line_names_file_line_field(tmp_path, fmt, row, field):
    good = {
        "math500": {"problem": "p", "answer": "1", "solution": "s", "subject": "x", "level": 1, "unique_id": "a"},
        "aime": {"problem": "p", "answer": "1"},
        "amc23": {"id": 9, "problem": "p", "answer": 1.0},
        "gsm8k": {"question": "q", "answer": "x\n#### 1"},
        "hmmt25": {"problem_idx": 0, "problem": "p", "answer": "1"},
    }
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps(good[fmt]) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError) as info:
        load_benchmark(path, fmt, "b")
    assert (info.value.line, info.value.field) == (2, field)
    assert str(info.value).startswith(f"{path}:2:{field}: ")


def test_hmmt25_user_file_and_missing_path(tmp_path, capsys):
    # HMMT Feb 2025 is not shipped here: a file in MathArena's shape loads; a missing path says so.
    path = tmp_path / "hmmt.jsonl"
    path.write_text(
        "".join(
            json.dumps({"problem_idx": i + 1, "problem": f"p{i}", "answer": r"\frac{1}{2}"}) + "\n" for i in range(30)
        )
    )
    out = tmp_path / "out.jsonl"
    assert (
        benchmark_main(
            ["--input", str(path), "--format", "hmmt25", "--name", "hmmt25", "--count", "30", "--output", str(out)]
        )
        == 0
    )
    rows = read_jsonl(out)
    assert len(rows) == 30 and rows[0]["answer"] == r"\frac{1}{2}" and rows[0]["id"] == "1"
    with pytest.raises(SystemExit, match="hmmt25/test.jsonl: benchmark file not found"):
        benchmark_main(
            [
                "--input",
                "../shared/data/hmmt25/test.jsonl",
                "--format",
                "hmmt25",
                "--name",
                "hmmt25",
                "--output",
                str(out),
            ]
        )
