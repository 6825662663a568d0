"""A YAML syntax error in config.yaml or a study file stops the plan with that file, line and column
(Snakemake's own `configfile:` said "Config file is not valid JSON or YAML" at the Snakefile's line)."""

from __future__ import annotations

import os
import subprocess

from dryrun import SNAKEMAKE, copy_workflow


def test_a_yaml_error_names_the_file_line_and_column(tmp_path):
    from motab.plan.compose import yaml_syntax_error

    path = tmp_path / "s.yaml"
    path.write_text("studies:\n  s:\n    eval: {seeds: [0, 1}\n")
    assert yaml_syntax_error(path) == (
        f"{path}:3:24: not valid YAML: expected ',' or ']', but got '}}' (while parsing a flow sequence)"
    )
    path.write_text("studies:\n  s:\n\tteacher: x\n")
    assert yaml_syntax_error(path).startswith(f"{path}:3:1: not valid YAML: found character '\\t'")
    path.write_text("studies:\n  s: {teacher: x}\n")
    assert yaml_syntax_error(path) is None


def test_snakemake_names_the_broken_study_file(tmp_path):
    work = copy_workflow(tmp_path, with_package=True)
    study = work / "studies" / "toy.yaml"
    lines = study.read_text().splitlines()
    broken = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#") and i > 2)
    lines[broken] = lines[broken] + ": [unclosed"  # `teacher: x: [unclosed`
    study.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(work)},
    )
    assert result.returncode != 0
    assert f"studies/toy.yaml:{broken + 1}:" in result.stderr, result.stderr
    assert "not valid JSON or YAML" not in result.stderr and "Traceback" not in result.stderr
