"""The `motab` command line as a user meets it: one program name, --help with defaults and a working
example for every command, --version, `motab env`, and a user's mistake as one line (no traceback)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from motab import __version__
from motab.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]


def motab(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m motab ARGS` in a child process, with this checkout's package."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO)) | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "motab", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


class _Parsed(Exception):
    pass


def command_parser_of(name: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser `motab NAME` builds (caught at its parse_args, before the command does anything)."""
    found = []

    def catch(self, args=None, namespace=None):
        found.append(self)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(_Parsed):
        importlib.import_module(COMMANDS[name][0]).main([])
    monkeypatch.undo()
    return found[0]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_help_is_motab_name_with_defaults_and_an_example_that_parses(name, monkeypatch):
    parser = command_parser_of(name, monkeypatch)
    text = parser.format_help()
    assert parser.prog == f"motab {name}" and text.startswith(f"usage: motab {name} ")
    for action in parser._actions:
        default = action.default
        if default is None or default is False or default == [] or isinstance(action, argparse._HelpAction):
            continue
        formatter = parser._get_formatter()
        formatter.add_argument(action)
        shown = formatter.format_help()
        # SUPPRESS: a setting whose value comes from --config unless the flag is given (kd-train)
        wanted = ("default", "required") if default == argparse.SUPPRESS else ("default",)
        assert any(word in shown for word in wanted), f"motab {name} {action.option_strings}: default not shown"
    example = re.search(r"^example:\n  (.+)$", text, re.M)
    assert example, f"motab {name} --help has no example"
    words = shlex.split(example.group(1))
    words = words[next(i for i, w in enumerate(words) if w == "motab") :]  # after any VAR=value
    assert words[:2] == ["motab", name]
    argparse.ArgumentParser.parse_args(parser, words[2:])  # the example is a valid command line


def test_help_and_version_say_motab_however_it_is_started():
    top = motab("--help")
    assert top.returncode == 0 and top.stdout.startswith("usage: motab <command>")
    assert all(f"  {name} " in top.stdout for name in COMMANDS)
    version = motab("--version")
    assert version.returncode == 0 and version.stdout == f"motab {__version__}\n"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{__version__}"' in pyproject
    sub = motab("grade", "--help")
    assert sub.returncode == 0 and sub.stdout.startswith("usage: motab grade ")
    assert "(default: 1)" in sub.stdout and "example:\n  motab grade --input" in sub.stdout


def test_env_lists_the_stack_and_honours_hf_hub_offline():
    proc = motab("env", env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    fields = dict(re.findall(r"^- ([^:]+):\s+(.*)$", proc.stdout, re.M))
    for name in ("motab", "python", "torch", "transformers", "llamafactory", "evalscope", "sglang", "math-verify"):
        assert name in fields, proc.stdout
    assert fields["snakemake"] != "not installed" and fields["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "GPUs" in fields and "not tried (offline" in fields["Hugging Face hub"]


def test_env_reports_an_unreachable_hub_within_its_timeout():
    with socket.socket() as sock:  # a local port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    proc = motab("env", "--timeout-s", "2", env={"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "0"})
    assert proc.returncode == 0 and time.monotonic() - start < 60
    assert re.search(rf"^- Hugging Face hub: http://127\.0\.0\.1:{port}: unreachable", proc.stdout, re.M)


def one_line_error(proc: subprocess.CompletedProcess, name: str) -> str:
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"motab {name}: error: "), proc.stderr
    return lines[0]


def test_grade_on_a_csv_is_one_line_naming_file_and_line(tmp_path):
    answers = tmp_path / "answers.csv"
    answers.write_text("id,response,gold\n1,\\boxed{2},2\n")
    proc = motab("grade", "--input", str(answers), "--output", str(tmp_path / "graded.jsonl"))
    assert f"{answers}:1: not valid JSON" in one_line_error(proc, "grade")
    assert proc.returncode == 1


def test_missing_file_and_bad_values_are_one_line(tmp_path):
    missing = motab("grade", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o.jsonl"))
    assert one_line_error(missing, "grade").endswith(f"{tmp_path / 'nope.jsonl'}: no such file or directory")
    bad = motab("grade", "--input", "a", "--output", "b", "--processes", "0")
    assert "--processes: expected 1 or more, found 0" in one_line_error(bad, "grade") and bad.returncode == 2
    unknown = motab("tables", "--spec", "s.json", "--evals", "e.json", "--output-prefix", "t", "--bogus")
    assert "unrecognized arguments: --bogus" in one_line_error(unknown, "tables")
    typo = motab("gradee")
    assert typo.returncode == 2 and "unknown command 'gradee'" in typo.stderr


def test_a_bug_keeps_its_traceback_and_motab_traceback_shows_a_users_one(tmp_path):
    answers = tmp_path / "answers.csv"
    answers.write_text("id,response\n")
    proc = motab("grade", "--input", str(answers), "--output", "o.jsonl", env={"MOTAB_TRACEBACK": "1"})
    assert "Traceback" in proc.stderr and "DataError" in proc.stderr


def test_synth_config_file_mistakes_name_the_file_and_the_key(tmp_path):
    config = tmp_path / "teacher_only.yaml"
    config.write_text("num_responses: 1\ntemprature: 0.6\nseed: 0\n")
    base = ["synth", "--method", "teacher_only", "--problems", "p.jsonl", "--teacher", "t", "--output", "o.jsonl"]
    line = one_line_error(motab(*base, "--config", str(config)), "synth")
    assert line.startswith(f"motab synth: error: {config}: ")
    assert "temprature: unknown key" in line and "missing required key(s) temperature" in line
    config.write_text("num_responses: 1\n  seed: 0\n")  # an indented key: bad YAML on line 2
    assert f"{config}:2: not valid YAML/JSON" in one_line_error(motab(*base, "--config", str(config)), "synth")
    assert "--config FILE" in one_line_error(motab(*base), "synth")


def test_sft_config_file_is_checked_against_the_config_schema_before_training(tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text(json.dumps({"finetuning_type": "full", "cutoff_len": 0}))
    proc = motab(
        "sft", "--model", "m", "--dataset-dir", "d", "--dataset", "x", "--output", "o", "--config", str(config)
    )
    line = one_line_error(proc, "sft")
    assert line.startswith(f"motab sft: error: {config}: ") and ("cutoff_len" in line or "missing required" in line)


def test_docs_cli_shows_every_commands_help_example(monkeypatch):
    """docs/cli.md carries each command's --help example verbatim (which the test above parses)."""
    docs = (REPO / "docs" / "cli.md").read_text()
    for name in COMMANDS:
        example = re.search(r"^example:\n  (.+)$", command_parser_of(name, monkeypatch).format_help(), re.M).group(1)
        assert example in docs, f"docs/cli.md lacks the example of motab {name}: {example}"


@pytest.mark.parametrize(
    "argv",
    [
        ["tables", "--spec", "{bad}", "--evals", "{bad}", "--output-prefix", "{tmp}/t"],
        ["report-chart", "--spec", "{bad}", "--evals", "{bad}", "--output", "{tmp}/c.png"],
        [
            "eval-grade",
            "--responses",
            "{bad}",
            "--output",
            "{tmp}/e.json",
            "--run",
            "r",
            "--benchmark",
            "b",
            "--seed",
            "0",
        ],
        ["prepare", "--input", "{bad}", "--source", "s", "--output", "{tmp}/p.jsonl"],
        ["kd-prompts", "--problems", "{bad}", "--output", "{tmp}/k.jsonl"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_csv_where_json_belongs_is_one_line_for_every_reader(argv, tmp_path):
    bad = tmp_path / "answers.csv"
    bad.write_text("id,response,gold\n1,2,2\n")
    proc = motab(*(a.format(bad=bad, tmp=tmp_path) for a in argv))
    assert f"{bad}:1: not valid JSON" in one_line_error(proc, argv[0])
