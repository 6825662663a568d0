"""Report figures: the chart carries the table's numbers, PNG bytes are stable, missing logs are noted."""

from __future__ import annotations

import json
import random

import pytest

from motab.jsonio import DataError
from motab.report.chart import bar_chart, chart_data
from motab.report.curves import read_training_log, training_curves

SPEC = {
    "title": "Tiny",
    "metric": "avg@4",
    "scale": 100,
    "decimals": 2,
    "rows": [{"run": "teacher", "label": "Teacher"}, {"run": "student", "label": "Student"}],
    "benchmarks": [{"name": "toy", "label": "Toy"}, {"name": "b2", "label": "B2"}],
}
VALUES = {
    ("teacher", "toy"): {0: 0.5, 1: 0.6, 2: 0.7},
    ("teacher", "b2"): {0: 0.2, 1: 0.4},
    ("student", "toy"): {0: 0.25, 1: 0.75},
    ("student", "b2"): {5: 0.9},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _evals(folder) -> list[str]:
    paths = []
    for (run, bench), seeds in VALUES.items():
        for seed, value in seeds.items():
            path = folder / f"{run}__{bench}__{seed}.json"
            path.write_text(json.dumps({"run": run, "benchmark": bench, "seed": seed, "metrics": {"avg@4": value}}))
            paths.append(str(path))
    return paths


def test_chart_numbers_are_the_tables(tmp_path):
    groups, runs, means, stds = chart_data(SPEC, _evals(tmp_path))
    assert groups == ["Toy", "B2", "Avg"] and runs == ["Teacher", "Student"]
    assert means[0] == pytest.approx([60.0, 30.0, 45.0]) and means[1] == pytest.approx([50.0, 90.0, 70.0])
    assert stds[0][:2] == pytest.approx([10.0, 200**0.5]) and stds[1][0] == pytest.approx(1250**0.5)
    assert stds[0][2] is stds[1][1] is stds[1][2] is None  # no error bar for one seed, nor for Avg


def test_chart_png_is_byte_identical_whatever_the_input_order(tmp_path):
    evals = _evals(tmp_path)
    bar_chart(SPEC, evals, tmp_path / "a.png")
    shuffled = list(evals)
    random.Random(3).shuffle(shuffled)
    bar_chart(SPEC, shuffled, tmp_path / "b.png")
    first = (tmp_path / "a.png").read_bytes()
    assert first.startswith(PNG_MAGIC) and len(first) > 5000
    assert first == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in first and b"matplotlib" not in first


def test_training_curves_plot_what_exists_and_note_missing(tmp_path):
    kd, sft, empty = tmp_path / "kd", tmp_path / "sft", tmp_path / "nolog"
    for folder in (kd, sft, empty):
        folder.mkdir()
    (kd / "training_log.csv").write_text("step,loss,kl_to_teacher,rollout_tokens\n1,0.9,0.5,100\n2,0.7,0.4,120\n")
    (sft / "training_log.csv").write_text("step,loss\n1,2.0\n2,1.5\n3,1.1\n")
    missing = training_curves([("KD", kd), ("SFT", sft), ("No log", empty)], tmp_path / "c.png")
    assert missing == ["No log"]
    again = training_curves([("KD", kd), ("SFT", sft), ("No log", empty)], tmp_path / "d.png")
    assert again == missing and (tmp_path / "c.png").read_bytes() == (tmp_path / "d.png").read_bytes()
    only_sft = training_curves([("SFT", sft)], tmp_path / "e.png")  # no KL panel: a narrower figure
    assert only_sft == [] and (tmp_path / "e.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    assert training_curves([], tmp_path / "f.png") == []  # no trained runs: a figure with a note


def test_bad_training_log_names_file_line_field(tmp_path):
    (tmp_path / "training_log.csv").write_text("step,loss\n1,0.5\n2,nan?\n")
    with pytest.raises(DataError, match=r"training_log\.csv:3:loss: expected a number, found 'nan\?'"):
        read_training_log(tmp_path / "training_log.csv")
    (tmp_path / "training_log.csv").write_text("epoch,value\n1,0.5\n")
    with pytest.raises(DataError, match=r"training_log\.csv:1: expected a header with step and loss"):
        read_training_log(tmp_path / "training_log.csv")


def test_sft_and_kd_curves_never_share_an_axis():
    from motab.report.curves import curve_panels

    sft = {"step": [1.0], "loss": [2.0]}
    kd = {"step": [1.0], "loss": [0.9], "kl_to_teacher": [0.5], "rollout_tokens": [100.0]}
    panels = curve_panels([("SFT", sft), ("KD", kd)])
    assert [(title, series) for title, _, series in panels] == [
        ("SFT: cross-entropy", [("SFT", "loss")]),
        ("On-policy KD: distillation loss", [("KD", "loss")]),
        ("On-policy KD: KL to the teacher", [("KD", "kl_to_teacher")]),
    ]
    assert [title for title, _, _ in curve_panels([("SFT", sft)])] == ["SFT: cross-entropy"]
    assert curve_panels([]) == []
