"""Provenance: JSON outputs name the hash of the config values they depend on, the code version
and package versions; the code files a rule runs are found from the package's imports."""

from __future__ import annotations

import json
import re

from dryrun import REPO

from motab.jsonio import write_jsonl
from motab.plan.codedeps import module_files
from motab.provenance import config_hash
from motab.synthesis.cot_filter import main as filter_main
from motab.synthesis.run import finalize


def assert_provenance(obj: dict, params: dict) -> None:
    stamp = obj["provenance"]
    assert stamp["config_hash"] == config_hash(params) and re.fullmatch(r"[0-9a-f]{16}", stamp["config_hash"])
    assert stamp["code_version"] and "snakemake" in stamp["packages"] and "torch" in stamp["packages"]


def rows_and_problems():
    problems = [{"id": "p0", "answer": "4"}, {"id": "p1", "answer": "9"}]
    rows = [
        {
            "id": "p1",
            "sample": 0,
            "input": "q",
            "output": "so \\boxed{9}",
            "stats": {"teacher_tokens": 3, "student_tokens": 1},
        },
        {
            "id": "p0",
            "sample": 0,
            "input": "q",
            "output": "so \\boxed{5}",
            "stats": {"teacher_tokens": 2, "student_tokens": 0},
        },
    ]
    return rows, problems


def test_synth_stats_name_the_config_they_came_from(tmp_path):
    rows, problems = rows_and_problems()
    write_jsonl(tmp_path / "partial.jsonl", rows)
    meta = {"method": "skd", "teacher": "models/t", "params": {"gamma": 0.9}}
    finalize(
        tmp_path / "partial.jsonl", tmp_path / "out.jsonl", problems, "skd", None, meta, str(tmp_path / "stats.json")
    )
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["teacher_share"] == round(5 / 6, 6) and stats["correct_rate"] == 0.5
    assert_provenance(stats, meta)


def test_filter_counts_and_stats_name_the_filter_config(tmp_path):
    rows, problems = rows_and_problems()
    write_jsonl(tmp_path / "synth.jsonl", rows)
    write_jsonl(tmp_path / "problems.jsonl", problems)
    params = {"banned": [], "max_words": 60, "ngram": 4, "max_ngram_repeats": 3}
    assert (
        filter_main(
            [
                "--input",
                str(tmp_path / "synth.jsonl"),
                "--gold",
                str(tmp_path / "problems.jsonl"),
                "--output",
                str(tmp_path / "kept.jsonl"),
                "--counts",
                str(tmp_path / "counts.json"),
                "--stats",
                str(tmp_path / "stats.json"),
                "--params-json",
                json.dumps(params),
            ]
        )
        == 0
    )
    counts = json.loads((tmp_path / "counts.json").read_text())
    assert counts["kept"] == 1 and counts["dropped"]["wrong_answer"] == 1
    assert_provenance(counts, params)
    assert_provenance(json.loads((tmp_path / "stats.json").read_text()), params)


def test_code_files_of_a_command_follow_its_imports_only():
    synth = module_files(str(REPO), "synth")
    assert "motab/synthesis/skd.py" in synth and "motab/synthesis/run.py" in synth  # imported by run.py
    assert "motab/jsonio.py" in synth and "motab/cli.py" in synth and "motab/__init__.py" in synth
    assert "motab/tables/build.py" not in synth and "motab/serving/server.py" not in synth
    assert "motab/serving/server.py" in module_files(str(REPO), "synth", "serve")  # the server it starts
    tables = module_files(str(REPO), "tables")
    assert not any(path.startswith(("motab/synthesis", "motab/training")) for path in tables)


def test_editing_the_grading_layer_reruns_every_job_that_grades_and_no_other():
    """The jobs that read answers (synthesis and its filter and card, eval-grade, grade) list the
    grading modules as code inputs; generation and tables do not."""
    extraction, equivalence = "motab/grading/extraction.py", "motab/grading/equivalence.py"
    for command in ("synth", "synth-filter", "data-card", "eval-grade", "grade"):
        assert {extraction, equivalence} <= set(module_files(str(REPO), command)), command
    assert "motab/grading/multiple_choice.py" in module_files(str(REPO), "eval-grade")
    for command in ("eval-generate", "tables", "prepare"):
        assert not any(path.startswith("motab/grading/") for path in module_files(str(REPO), command)), command


def test_a_module_a_registry_names_counts_as_imported_but_not_every_command(tmp_path):
    """A registry naming modules it imports when asked (motab.synthesis.methods) makes them code
    inputs; cli.py's command table names every command's module, and a command runs only its own."""
    pkg = tmp_path / "motab"
    pkg.mkdir()
    for name in ("__init__", "__main__", "lazy", "other", "unused"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "cli.py").write_text('COMMANDS = {"go": ("motab.registry", "h"), "other": ("motab.other", "h")}\n')
    (pkg / "registry.py").write_text('TABLE = {"a": "motab.lazy", "b": "motab.missing", "c": "motab.lazy is here"}\n')
    assert module_files(str(tmp_path), "go") == (
        "motab/__init__.py",
        "motab/__main__.py",
        "motab/cli.py",
        "motab/lazy.py",
        "motab/registry.py",
    )


def test_relative_imports_and_lazy_imports_count(tmp_path):
    pkg = tmp_path / "motab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("")
    (pkg / "cli.py").write_text('COMMANDS = {"go": ("motab.sub.a", "help")}\n')
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n\ndef main():\n    from ..c import thing\n")
    (pkg / "sub" / "b.py").write_text("import os\n")
    (pkg / "c.py").write_text("thing = 1\n")
    (pkg / "unused.py").write_text("")
    assert module_files(str(tmp_path), "go") == (
        "motab/__init__.py",
        "motab/__main__.py",
        "motab/c.py",
        "motab/cli.py",
        "motab/sub/__init__.py",
        "motab/sub/a.py",
        "motab/sub/b.py",
    )
