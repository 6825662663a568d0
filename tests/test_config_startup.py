"""The config as a sloppy or hostile user writes it: every path and name reaches the shell
quoted, local-looking paths must exist at start-up, unknown names and schema errors stop the run
with one line each naming the config key."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from dryrun import copy_workflow

from motab.config_check import looks_local

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PAPER_STUDIES = ["motab", "pwopsd", "cotfilter", "opd"]
PATH_FLAGS = {"--input", "--model", "--teacher", "--student", "--benchmark-file"}


def snakemake(overlay: dict, tmp_path: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    extra = tmp_path / "overlay.yaml"
    extra.write_text(yaml.safe_dump(overlay))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [SNAKEMAKE, *args, "--configfile", "config.yaml", str(extra)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def hostile_paths(tmp_path: Path) -> tuple[dict, set[str]]:
    """An overlay pointing every hub model, file dataset and benchmark at an existing local path with a
    space and a command substitution in it; and those paths."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    overlay: dict = {"select": PAPER_STUDIES, "models": {}, "datasets": {}, "benchmarks": {}}
    paths = set()
    for section in ("models", "datasets", "benchmarks"):
        for name, entry in config[section].items():
            if entry["source"] == "toy" or "path" not in entry:
                continue
            path = tmp_path / f"my {section}" / f"{name} $(touch pwned)"
            if section == "models":
                path.mkdir(parents=True)
            else:
                path = path.with_name(path.name + ".jsonl")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text('{"question": "1+1?", "answer": "2"}\n')
            overlay[section][name] = {"path": str(path)}
            paths.add(str(path))
    return overlay, paths


def test_every_path_reaches_the_shell_as_one_quoted_word(tmp_path):
    overlay, paths = hostile_paths(tmp_path)
    proc = snakemake(overlay, tmp_path, "-n", "-p", "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [line.split("Shell command: ", 1)[1] for line in proc.stdout.splitlines() if "Shell command: " in line]
    seen = set()
    for command in commands:
        words = shlex.split(command)
        # no path split into words: each "$(" sits in a word holding a whole path (itself, or JSON params)
        assert all(any(p in w for p in paths) for w in words if "$(" in w), command
        starts = [i for i, w in enumerate(words) if w == "motab"]  # motab <command>, python -m motab <command>
        subcommand = words[starts[0] + 1] if starts else words[0]
        for flag, value in itertools.pairwise(words):
            if flag in PATH_FLAGS and value in paths:
                seen.add((subcommand, flag))
    assert {
        ("prepare", "--input"),
        ("benchmark", "--input"),
        ("eval-generate", "--model"),
        ("synth", "--teacher"),
        ("synth", "--student"),
        ("sft", "--model"),
        ("eval-critic", "--model"),
        ("kd-train", "--student"),
        ("kd-train", "--teacher"),
    } <= seen


def test_command_substitution_in_a_path_is_not_executed(tmp_path):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    copy_workflow(workdir)
    raw = tmp_path / "raw data $(touch pwned).jsonl"
    raw.write_text(
        "".join(
            json.dumps({"question": f"What is {i} + 1?", "answer": f"so {i}+1.\n#### {i + 1}"}) + "\n" for i in range(3)
        )
    )
    proc = snakemake(
        {"datasets": {"gsm8k_train": {"path": str(raw)}}},
        tmp_path,
        "--cores",
        "1",
        "results/cotfilter/data/problems.jsonl",
        cwd=workdir,
    )
    assert not (workdir / "pwned").exists() and not list(tmp_path.rglob("pwned")), "the shell ran $(touch pwned)"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = (workdir / "results/cotfilter/data/problems.jsonl").read_text().splitlines()
    assert [json.loads(r)["answer"] for r in rows] == ["1", "2", "3"]


def test_local_looking_paths_must_exist_at_start_up(tmp_path):
    overlay = {
        "select": ["motab"],
        "datasets": {"limo": {"path": "/data/limo.jsonl"}},
        "models": {"Qwen3-4B": {"path": "./models/x"}},
    }
    proc = snakemake(overlay, tmp_path, "-n")
    message = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "datasets.limo.path: '/data/limo.jsonl' looks like a local path but does not exist" in message
    assert "models.Qwen3-4B.path: './models/x' looks like a local path but does not exist" in message
    assert "Qwen3-32B" not in message  # a hub id (Qwen/Qwen3-32B) passes
    assert "InputFunctionException" not in message and "Traceback" not in message


def test_hub_ids_and_local_paths_told_apart():
    assert not any(looks_local(p) for p in ("GAIR/LIMO", "Qwen/Qwen3-32B", "MathArena/hmmt_feb_2025"))
    assert all(
        looks_local(p)
        for p in (
            "/data/limo.jsonl",
            "./models/x",
            "../shared/data/gsm8k/train.jsonl",
            "data/limo.jsonl",
            "~/models/x",
            "results/a/b",
        )
    )


def test_unknown_names_stop_the_run_naming_the_config_field(tmp_path):
    overlay = {
        "studies": {
            "toy": {
                "teacher": "toy-teachr",
                "runs": {"sft_skd": {"sft": "skdd"}, "kd_x": {"kd": "rkll", "from": "sft_skd"}},
                "eval": {"benchmarks": ["toy_tset"]},
            }
        }
    }
    proc = snakemake(overlay, tmp_path, "-n")
    message = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "studies.toy.teacher: no model 'toy-teachr'; known: " in message
    assert "studies.toy.runs.sft_skd.sft: no synth method 'skdd'; known: motab, motab.filtered, " in message
    assert "studies.toy.runs.kd_x.kd: no kd block 'rkll'; known: fkl, opsd, pwopsd, rkl" in message
    assert "studies.toy.eval.benchmarks[0]: no benchmark 'toy_tset'; known: " in message
    assert "KeyError" not in message and "InputFunctionException" not in message


def test_schema_errors_take_one_line_each(tmp_path):
    overlay = {
        "studies": {
            "toy": {
                "eval": {"n": "zero"},
                "sft": {"learning_rat": 0.1},
                "runs": {"bad": {"label": "neither model, sft nor kd"}},
            }
        },
        "models": {"toy-teacher": {"tp": 0}},
    }
    proc = snakemake(overlay, tmp_path, "-n")
    message = proc.stdout + proc.stderr
    assert proc.returncode != 0
    expected = [
        "studies.toy.eval.n: expected integer, found 'zero'",
        "studies.toy.sft.learning_rat: unknown key (known: ",
        "studies.toy.runs.bad: expected exactly one of the keys model, sft, kd",
        "models.toy-teacher.tp: expected a number >= 1, found 0",
    ]
    for line in expected:
        assert sum(line in row for row in message.splitlines()) == 1, (line, message[-3000:])
    assert "Failed validating" not in message and "schema[" not in message
    # each line names the file and line the key was written on: here the override file (yaml.safe_dump
    # sorts keys: models first, then studies.toy.eval.n on line 7)
    assert f"{tmp_path / 'overlay.yaml'}:7: studies.toy.eval.n: expected integer" in message
    unknown = next(row for row in message.splitlines() if "learning_rat:" in row)
    assert "cutoff_len" in unknown and "learning_rate" in unknown  # the known keys, to spot the typo


def test_schema_error_lines_for_each_kind_of_mistake():
    import copy

    from motab.config_check import schema_errors

    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    from motab.plan import compose, workflow_config

    config = compose(workflow_config(REPO), REPO)  # as common.smk checks it
    assert schema_errors(config, schema) == []
    bad = copy.deepcopy(config)
    bad["select"] = "toy"
    bad["models"]["Qwen3-4B"] = {"source": "hub"}
    bad["datasets"]["toy"]["source"] = "tyo"
    bad["studies"]["toy"]["synth"]["teacher_onyl"] = {"num_responses": 1}
    bad["studies"]["toy"]["eval"]["top_p"] = 0
    bad["studies"]["toy"]["eval"]["benchmarks"] = []
    errors = schema_errors(bad, schema)
    assert errors[:5] == [
        "datasets.toy.source: expected one of toy, limo, file, found 'tyo'",
        "models.Qwen3-4B: missing required key(s) path",
        "select: expected array, found 'toy'",
        "studies.toy.eval.benchmarks: expected at least 1 items, found 0",
        "studies.toy.eval.top_p: expected a number > 0, found 0",
    ]
    # synthesis entries are named by their algorithm, optionally suffixed (sweeps, a second student)
    assert len(errors) == 6 and errors[5].startswith("studies.toy.synth.teacher_onyl: unknown key (known: motab, ")
    assert "teacher_only" in errors[5] and "names matching ^skd_" in errors[5]
