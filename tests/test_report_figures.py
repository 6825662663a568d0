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
        ("On-policy KD: reverse KL to the teacher", [("KD", "kl_to_teacher")]),
    ]
    assert [title for title, _, _ in curve_panels([("SFT", sft)])] == ["SFT: cross-entropy"]
    assert curve_panels([]) == []


def _spec_and_evals(folder, runs: int, benchmarks: int) -> tuple[dict, list[str]]:
    spec = {
        "title": "Many runs",
        "metric": "avg@4",
        "scale": 100,
        "decimals": 2,
        "rows": [{"run": f"r{i}", "label": f"Run {i}"} for i in range(runs)],
        "benchmarks": [{"name": f"b{j}", "label": f"B{j}"} for j in range(benchmarks)],
    }
    paths = []
    for i in range(runs):
        for j in range(benchmarks):
            path = folder / f"r{i}__b{j}.json"
            path.write_text(json.dumps({"run": f"r{i}", "benchmark": f"b{j}", "seed": 0, "metrics": {"avg@4": 0.5}}))
            paths.append(str(path))
    return spec, paths


def test_eighteen_runs_get_eighteen_colours_on_the_chart(tmp_path):
    """The pwopsd study's 18 runs: every bar colour on the PNG is its own run's (before, run 11 took
    run 1's blue, and so on)."""
    from PIL import Image

    from motab.report.figure import run_colours

    spec, evals = _spec_and_evals(tmp_path, runs=18, benchmarks=1)
    bar_chart(spec, evals, tmp_path / "c.png")
    colours = run_colours(18)
    assert len(set(colours)) == 18 and colours[:2] == ["#1f77b4", "#ff7f0e"]  # up to ten runs: as before
    counts = Image.open(tmp_path / "c.png").convert("RGB").getcolors(maxcolors=1 << 20)
    on_png = {"#{:02x}{:02x}{:02x}".format(*rgb): n for n, rgb in counts}
    assert all(on_png.get(colour, 0) >= 50 for colour in colours), [c for c in colours if on_png.get(c, 0) < 50]


@pytest.mark.parametrize("n", [11, 20, 61, 120])
def test_run_colours_never_repeat(n):
    from motab.report.figure import run_colours

    assert len(set(run_colours(n))) == n


def test_one_benchmark_has_no_avg_group(tmp_path):
    spec, evals = _spec_and_evals(tmp_path, runs=2, benchmarks=1)
    groups, _, means, stds = chart_data(spec, evals)
    assert groups == ["B0"] and means == [[50.0], [50.0]] and stds == [[None], [None]]
    spec, evals = _spec_and_evals(tmp_path, runs=2, benchmarks=2)
    assert chart_data(spec, evals)[0] == ["B0", "B1", "Avg"]


def test_kl_panel_names_its_direction():
    from motab.report.curves import curve_panels

    kd = {"step": [1.0], "loss": [0.9], "kl_to_teacher": [0.5], "rollout_tokens": [100.0]}
    _, ylabel, _ = curve_panels([("KD", kd)])[-1]
    assert "KL(student||teacher)" in ylabel
