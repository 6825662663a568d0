"""Tables: exact markdown for a tiny hand-computed case, byte-identical output, LaTeX escapes, errors."""

from __future__ import annotations

import json
import random
import re

import pytest

from motab.jsonio import DataError
from motab.tables import build
from motab.tables.build import TableError
from motab.tables.render import latex_escape

SPEC = {
    "title": "Tiny",
    "metric": "avg@4",
    "scale": 100,
    "decimals": 2,
    "rows": [{"run": "teacher", "label": "Teacher"}, {"run": "student", "label": "Student"}],
    "benchmarks": [{"name": "toy", "label": "Toy"}, {"name": "b2", "label": "B2"}],
    "extra_columns": [{"label": "Teacher share", "values": {"student": 0.73}}],
    "reference": {"label": "published", "rows": {"Student": {"toy": "52.5±1.25", "avg": "71.0"}}},
}
VALUES = {  # (run, benchmark): {seed: avg@4}
    ("teacher", "toy"): {0: 0.5, 1: 0.6, 2: 0.7},  # 60 ± 10
    ("teacher", "b2"): {0: 0.2, 1: 0.4},  # 30 ± sqrt(200) = 14.14
    ("student", "toy"): {0: 0.25, 1: 0.75},  # 50 ± sqrt(1250) = 35.36
    ("student", "b2"): {5: 0.9},  # 90, one seed
}
EXPECTED_MD = """## Tiny

| Run | Toy | B2 | Avg | Teacher share |
| :--- | ---: | ---: | ---: | ---: |
| Teacher | 60.00 ± 10.00 | 30.00 ± 14.14 | 45.00 |  |
| Student | 50.00 ± 35.36 | 90.00 † | 70.00 | 0.73 |
| Student (published) | 52.5 ± 1.25 |  | 71.0 |  |
| Student (Δ ours − published) | -2.50 |  | -1.00 |  |

Cells are avg@4 × 100, mean ± sample std (ddof=1) over 1–3 seeds (see the CSV for each cell); \
Avg is the equal-weight mean of the per-benchmark means. † 1 seed: mean only, no std. \
Rows marked (published) give published values; Δ rows give ours − published. \
Answers: strict extraction, motab comparison.
"""


def _write_evals(folder, values=VALUES, extra_metrics=None, grading=None):
    paths = []
    for (run, bench), seeds in values.items():
        for seed, value in seeds.items():
            path = folder / f"{run}__{bench}__{seed}.json"
            metrics = {"avg@4": value, "pass@4": 1.0, **(extra_metrics or {})}
            how = (grading or {}).get(bench, {"extraction": "strict", "equivalence": "motab"})
            path.write_text(json.dumps({"run": run, "benchmark": bench, "seed": seed, "metrics": metrics, **how}))
            paths.append(str(path))
    return paths


def _main(tmp_path, spec, evals, prefix="out"):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / prefix
    assert build.main(["--spec", str(spec_path), "--evals", *evals, "--output-prefix", str(out)]) == 0
    return {ext: (tmp_path / f"{prefix}.{ext}").read_bytes() for ext in ("md", "csv", "tex")}


def test_exact_markdown(tmp_path):
    files = _main(tmp_path, SPEC, _write_evals(tmp_path))
    assert files["md"].decode("utf-8") == EXPECTED_MD


def test_footnote_names_the_extraction_per_benchmark(tmp_path):
    grading = {
        "toy": {
            "extraction": "strict",
            "equivalence": "motab",
            "metrics_by_extraction": {"strict": {}, "flexible": {}},
        },
        "b2": {"extraction": "boxed", "equivalence": "pwopsd"},
    }
    md = _main(tmp_path, SPEC, _write_evals(tmp_path, grading=grading))["md"].decode("utf-8")
    assert (
        "Answers: b2: boxed extraction, pwopsd comparison; toy: strict extraction, motab comparison; "
        "also graded: flexible."
    ) in md.replace("\n", " ")


def test_metric_under_another_extraction_mode(tmp_path):
    """GSM8K-style: strict in one table, flexible (graded beside it) in another."""
    grading = {
        bench: {"extraction": "strict", "equivalence": "motab", "metrics_by_extraction": {"flexible": {"avg@4": 0.5}}}
        for bench in ("toy", "b2")
    }
    spec = {key: value for key, value in SPEC.items() if key != "reference"} | {"metric": "avg@4/flexible"}
    md = _main(tmp_path, spec, _write_evals(tmp_path, grading=grading))["md"].decode("utf-8")
    assert "| Teacher | 50.00 ± 0.00 | 50.00 ± 0.00 | 50.00 |" in md


def test_csv_columns(tmp_path):
    text = _main(tmp_path, SPEC, _write_evals(tmp_path))["csv"].decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == "row,kind,Toy,Toy std,Toy seeds,B2,B2 std,B2 seeds,Avg,Teacher share"
    assert lines[1] == "Teacher,ours,60.00,10.00,3,30.00,14.14,2,45.00,"
    assert lines[2] == "Student,ours,50.00,35.36,2,90.00,,1,70.00,0.73"
    assert lines[3] == "Student (published),reference,52.5,1.25,,,,,71.0,"
    assert lines[4] == "Student (Δ ours − published),difference,-2.50,,,,,,-1.00,"
    assert text.endswith("\n") and "\r" not in text


def test_shuffled_evals_byte_identical(tmp_path):
    evals = _write_evals(tmp_path)
    first = _main(tmp_path, SPEC, evals, prefix="one")
    shuffled = list(evals)
    random.Random(1).shuffle(shuffled)
    assert shuffled != evals
    assert _main(tmp_path, SPEC, shuffled, prefix="two") == first


def test_uniform_seeds_footnote_and_no_reference(tmp_path):
    spec = {k: v for k, v in SPEC.items() if k not in ("reference", "extra_columns")}
    values = {key: {0: 0.5, 1: 0.5} for key in VALUES}
    md = _main(tmp_path, spec, _write_evals(tmp_path, values))["md"].decode("utf-8")
    assert "| Teacher | 50.00 ± 0.00 | 50.00 ± 0.00 | 50.00 |" in md
    assert "over 2 seeds;" in md and "†" not in md and "published" not in md


def test_latex_escapes_and_structure(tmp_path):
    assert latex_escape(r"A & B 100% a_b #1 $x$ {y} ~z ^w \v") == (
        r"A \& B 100\% a\_b \#1 \$x\$ \{y\} \textasciitilde{}z \textasciicircum{}w \textbackslash{}v"
    )
    spec = dict(
        SPEC,
        title="R&D 50% run_1",
        rows=[{"run": "teacher", "label": "T_1 #a"}, {"run": "student", "label": "Student"}],
    )
    tex = _main(tmp_path, spec, _write_evals(tmp_path))["tex"].decode("utf-8")
    assert r"\begin{tabular}{lrrrr}" in tex and tex.count(r"\end{tabular}") == 1
    assert r"T\_1 \#a & 60.00 $\pm$ 10.00 & 30.00 $\pm$ 14.14 & 45.00 &  \\" in tex
    assert r"90.00$^\dagger$" in tex
    assert r"\caption{R\&D 50\% run\_1. Cells are avg@4 $\times$ 100" in tex
    body = tex.split(r"\begin{tabular}")[1].split(r"\end{tabular}")[0]
    for line in body.splitlines()[2:]:
        if line.endswith(r"\\"):
            assert line.replace(r"\&", "").count("&") == 4  # 5 columns


def test_missing_cell_is_an_error(tmp_path):
    values = {k: v for k, v in VALUES.items() if k != ("student", "toy")}
    with pytest.raises(TableError, match=r"no eval file for \(run, benchmark\) \('student', 'toy'\)"):
        _main(tmp_path, SPEC, _write_evals(tmp_path, values))


def test_duplicate_seed_is_an_error(tmp_path):
    evals = _write_evals(tmp_path)
    dup = tmp_path / "copy.json"
    dup.write_text((tmp_path / "teacher__toy__1.json").read_text())
    with pytest.raises(TableError, match=r"duplicate eval for run 'teacher', benchmark 'toy', seed 1"):
        _main(tmp_path, SPEC, evals + [str(dup)])


def test_eval_outside_spec_is_an_error(tmp_path):
    evals = _write_evals(tmp_path)
    stray = _write_evals(tmp_path, {("other", "toy"): {0: 0.1}})
    with pytest.raises(DataError, match=r"other__toy__0\.json:run: run 'other' is not a row"):
        _main(tmp_path, SPEC, evals + stray)
    stray = _write_evals(tmp_path, {("teacher", "gsm8k"): {0: 0.1}})
    with pytest.raises(DataError, match=r"benchmark 'gsm8k' is not a column"):
        _main(tmp_path, SPEC, evals + stray)


def test_missing_metric_is_an_error(tmp_path):
    spec = dict(SPEC, metric="maj@4")
    with pytest.raises(DataError, match=r"metrics\.maj@4: expected a finite number"):
        _main(tmp_path, spec, _write_evals(tmp_path))


def test_bad_spec_is_an_error(tmp_path):
    with pytest.raises(TableError, match=r"reference\.rows: 'Nobody' is not a row label"):
        _main(tmp_path, dict(SPEC, reference={"label": "p", "rows": {"Nobody": {"toy": "1"}}}), _write_evals(tmp_path))
    with pytest.raises(TableError, match=r"spec\.rows\[1\]: missing field 'label'"):
        _main(tmp_path, dict(SPEC, rows=[{"run": "teacher", "label": "T"}, {"run": "student"}]), _write_evals(tmp_path))


# ----------------------------------------------------------------------------------------------
# published numbers from config, shuffled inputs, LaTeX validity

STUDY = {
    "runs": {"teacher": {"model": "t", "label": "Teacher"}, "student": {"model": "s", "label": "Student_1 & co"}},
    "eval": {"benchmarks": ["toy", "b2"]},
    "tables": {
        "main": {
            "title": "Main #1: 50% of runs",
            "metric": "avg@4",
            "rows": ["teacher", "student"],
            "reference": {
                "label": "Paper (Liu & Wu, 2025)",
                "rows": {"student": {"b2": "88.5±0.5", "toy": 52.5, "avg": "70"}, "teacher": {"toy": "61.25"}},
            },
        }
    },
}
BENCHMARKS = {"toy": {"label": "Toy_set"}, "b2": {"label": "B2 {x}"}}


def _tabular_rows(tex: str) -> list[str]:
    body = tex.split(r"\begin{tabular}{", 1)[1].split(r"\end{tabular}", 1)[0]
    rules = {r"\toprule", r"\midrule", r"\bottomrule"}  # booktabs
    return [line for line in body.splitlines()[1:] if line.strip() and line.strip() not in rules]


def assert_valid_tabular(tex: str, columns: int) -> None:
    """Balanced braces, one \\begin/\\end, `columns` cells per row, no unescaped & % # _ $ specials."""
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    spec = tex.split(r"\begin{tabular}{", 1)[1].split("}", 1)[0]
    assert len(spec) == columns and set(spec) <= set("lrc")
    depth = 0
    stripped = re.sub(r"\\[&%#_${}]", "", tex)
    for ch in stripped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    math_ok = re.sub(r"\$\\(pm|Delta|times|dagger)\$|\$-\$|\$\^\\dagger\$", "", stripped)
    assert "$" not in math_ok and "%" not in math_ok and "#" not in math_ok and "_" not in math_ok
    for row in _tabular_rows(tex):
        assert row.endswith(r" \\"), row
        assert re.sub(r"\\&", "", row).count("&") == columns - 1, row


def test_config_reference_stands_beside_ours_with_difference(tmp_path):
    from motab.plan.tables import table_spec

    spec = table_spec("s", STUDY, BENCHMARKS, "main")
    assert spec["reference"]["rows"] == {
        "Student_1 & co": {"avg": "70", "b2": "88.5±0.5", "toy": 52.5},
        "Teacher": {"toy": "61.25"},
    }
    evals = _write_evals(tmp_path, dict(VALUES))
    files = _main(tmp_path, spec, evals, prefix="one")
    md = files["md"].decode("utf-8")
    assert "| Teacher (Paper (Liu & Wu, 2025)) | 61.25 |  |  |" in md
    assert "| Teacher (Δ ours − Paper (Liu & Wu, 2025)) | -1.25 |  |  |" in md
    assert "| Student_1 & co (Paper (Liu & Wu, 2025)) | 52.5 | 88.5 ± 0.5 | 70 |" in md
    assert "| Student_1 & co (Δ ours − Paper (Liu & Wu, 2025)) | -2.50 | +1.50 | +0.00 |" in md
    csv_lines = files["csv"].decode("utf-8").splitlines()
    assert csv_lines[-1] == '"Student_1 & co (Δ ours − Paper (Liu & Wu, 2025))",difference,-2.50,,,+1.50,,,+0.00'
    tex = files["tex"].decode("utf-8")
    assert_valid_tabular(tex, columns=4)
    assert r"Student\_1 \& co (Paper (Liu \& Wu, 2025)) & 52.5 & 88.5 $\pm$ 0.5 & 70 \\" in tex
    assert r"B2 \{x\}" in tex and r"Main \#1: 50\% of runs" in tex
    for attempt in range(3):  # any order of the eval files: the same bytes
        shuffled = list(evals)
        random.Random(attempt).shuffle(shuffled)
        assert _main(tmp_path, spec, shuffled, prefix=f"s{attempt}") == files


def test_config_reference_errors_name_the_key():
    from motab.plan.tables import SpecError, table_spec

    bad = json.loads(json.dumps(STUDY))
    bad["tables"]["main"]["reference"]["rows"]["nobody"] = {"toy": 1}
    with pytest.raises(SpecError, match=r"studies\.s\.tables\.main\.reference\.rows: 'nobody' is not a row"):
        table_spec("s", bad, BENCHMARKS, "main")
    bad = json.loads(json.dumps(STUDY))
    bad["tables"]["main"]["reference"]["rows"]["student"]["gsm8k"] = 1
    with pytest.raises(SpecError, match=r"reference\.rows\.student: \['gsm8k'\] are not benchmarks"):
        table_spec("s", bad, BENCHMARKS, "main")


def test_one_benchmark_has_no_avg_column_and_the_latex_is_booktabs(tmp_path):
    spec = {
        "title": "AIME",
        "metric": "avg@4",
        "scale": 100,
        "decimals": 2,
        "rows": [{"run": "teacher", "label": "Teacher"}],
        "benchmarks": [{"name": "toy", "label": "Toy"}],
    }
    texts = build.build_tables(spec, _write_evals(tmp_path, {("teacher", "toy"): {0: 0.5, 1: 0.6, 2: 0.7}}))
    assert texts["md"].splitlines()[2] == "| Run | Toy |" and "| Teacher | 60.00 ± 10.00 |" in texts["md"]
    assert "Avg" not in texts["md"] and "Avg" not in texts["csv"] and "Avg" not in texts["tex"]
    assert texts["csv"].splitlines()[0] == "row,kind,Toy,Toy std,Toy seeds"
    assert r"\toprule" in texts["tex"] and r"\midrule" in texts["tex"] and r"\bottomrule" in texts["tex"]
    assert r"\hline" not in texts["tex"]
    assert_valid_tabular(texts["tex"], 2)


def test_the_html_table_shows_the_numbers(tmp_path):
    html = build.build_tables(SPEC, _write_evals(tmp_path))["html"]
    assert html.startswith("<!DOCTYPE html>") and "<th>Avg</th>" in html
    assert "<td>Teacher</td><td>60.00 ± 10.00</td><td>30.00 ± 14.14</td>" in html
    assert '<tr class="reference">' in html and "Cells are avg@4 × 100" in html
