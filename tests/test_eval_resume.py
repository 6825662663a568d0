"""eval-generate against a real embedded server on the tiny model (context 1024 tokens): an over-long
problem is skipped or cut and named (id, file:line) in the log, the responses and the eval JSON while
the job goes on; a job SIGKILLed halfway resumes from what it kept, to the bytes of an uninterrupted
run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from motab.evaluation import grade_responses
from motab.evaluation.generate import main
from motab.jsonio import write_jsonl
from motab.serving.launch import LOCAL_SERVER

LONG = "Compute 1 + 1 and explain every step. " * 120  # about 1,000 tokens of the toy tokenizer


def problems_file(tmp_path: Path, count: int, long_at: int | None = None) -> Path:
    rows = [{"id": f"p-{i:02d}", "input": f"Compute {i} + 1.", "answer": str(i + 1)} for i in range(count)]
    if long_at is not None:
        rows[long_at]["input"] = LONG
    path = tmp_path / "problems.jsonl"
    write_jsonl(path, rows)
    return path


def argv(model, problems: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model",
        str(model),
        "--problems",
        str(problems),
        "--output",
        str(out),
        "--n",
        "2",
        "--temperature",
        "1.0",
        "--max-tokens",
        "12",
        "--seed",
        "5",
        "--batch-problems",
        "2",
        "--max-in-flight",
        "1",
        "--server-command",
        LOCAL_SERVER + " --threads 1",
        *extra,
    ]


def rows_of(path: Path) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_an_over_long_problem_is_skipped_and_named_while_the_job_goes_on(tiny_model_dir, tmp_path, capsys):
    problems = problems_file(tmp_path, 5, long_at=2)  # p-02 on line 3
    out = tmp_path / "skip.jsonl"
    assert main(argv(tiny_model_dir, problems, out)) == 0
    assert f"over-long problem p-02 ({problems}:3)" in capsys.readouterr().err
    rows = rows_of(out)
    assert len(rows) == 5 and all("over_long" not in rows[f"p-0{i}"] for i in (0, 1, 3, 4))
    skipped = rows["p-02"]
    assert skipped["over_long"]["action"] == "skipped" and skipped["over_long"]["line"] == 3
    assert skipped["over_long"]["file"] == str(problems) and "context length 1024" in skipped["over_long"]["reason"]
    assert skipped["responses"] == ["", ""] and skipped["finish_reasons"] == ["skipped", "skipped"]
    assert not Path(f"{out}.partial.jsonl").exists()

    evaluation = tmp_path / "eval.json"
    assert (
        grade_responses.main(
            [
                "--responses",
                str(out),
                "--output",
                str(evaluation),
                "--run",
                "r",
                "--benchmark",
                "b",
                "--seed",
                "5",
                "--params-json",
                "{}",
            ]
        )
        == 0
    )
    graded = json.loads(evaluation.read_text())
    assert graded["num_problems"] == 5  # the skipped problem counts, as wrong
    assert [(o["id"], o["line"], o["action"]) for o in graded["over_long"]] == [("p-02", 3, "skipped")]


def test_truncate_cuts_the_budget_and_a_server_refusal_is_found_and_named(tiny_model_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    from motab.chat import build_prompt

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    words = LONG.split(" ")
    text = next(  # a prompt that fits alone but not with max_tokens 12
        " ".join(words[:k])
        for k in range(len(words), 0, -1)
        if len(tokenizer(build_prompt(tokenizer, " ".join(words[:k])), add_special_tokens=False)["input_ids"]) <= 1021
    )
    problems = problems_file(tmp_path, 3)
    rows = [json.loads(line) for line in problems.read_text().splitlines()]
    rows[1]["input"] = text
    write_jsonl(problems, rows)
    out = tmp_path / "cut.jsonl"
    assert main(argv(tiny_model_dir, problems, out, "--over-long", "truncate")) == 0
    cut = rows_of(out)["p-01"]
    assert cut["over_long"]["action"] == "truncated" and 1 <= cut["over_long"]["max_tokens"] < 12
    assert all(n <= cut["over_long"]["max_tokens"] for n in cut["completion_tokens"])

    # our count told a context far larger than the server's: the server's 400 is traced to its problem
    out = tmp_path / "refused.jsonl"
    assert main(argv(tiny_model_dir, problems, out, "--context-length", "100000")) == 0
    refused = rows_of(out)["p-01"]
    assert refused["over_long"]["action"] == "skipped" and refused["over_long"]["line"] == 2
    assert "context length" in refused["over_long"]["reason"]
    assert f"over-long problem p-01 ({problems}:2)" in capsys.readouterr().err
    assert all(len(rows_of(out)[pid]["responses"][0]) >= 0 for pid in ("p-00", "p-02"))


@pytest.mark.slow
def test_a_sigkilled_eval_generate_resumes_to_the_uninterrupted_bytes(tiny_model_dir, tmp_path):
    problems = problems_file(tmp_path, 16)
    full = tmp_path / "full.jsonl"
    assert main(argv(tiny_model_dir, problems, full, "--batch-problems", "1")) == 0

    killed = tmp_path / "killed.jsonl"
    partial = Path(f"{killed}.partial.jsonl")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "motab",
            "eval-generate",
            *argv(tiny_model_dir, problems, killed, "--batch-problems", "1"),
        ],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its server too: the SIGKILL below takes the whole group
    )
    deadline = time.time() + 300
    while not partial.exists() or len(partial.read_text().splitlines()) - 1 < 8:
        assert proc.poll() is None and time.time() < deadline, "eval-generate ended or stalled before half its rows"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not killed.exists()
    kept = len(partial.read_text().splitlines()) - 1
    assert 8 <= kept < 16

    assert main(argv(tiny_model_dir, problems, killed, "--batch-problems", "1")) == 0
    assert killed.read_bytes() == full.read_bytes()
    assert not partial.exists()


def test_a_partial_of_other_settings_is_refused_with_what_changed(tiny_model_dir, tmp_path):
    from motab.evaluation.partial import Partial
    from motab.jsonio import DataError

    out = tmp_path / "x.jsonl"
    Partial(out, {"settings": "a", "model": "m", "problems": "p", "prompts": "q"}).load()
    with pytest.raises(
        DataError, match=r"x.jsonl.partial.jsonl:1:partial_key: kept from an earlier run with another model"
    ):
        Partial(out, {"settings": "a", "model": "changed", "problems": "p", "prompts": "q"}).load()


def test_the_study_setting_reaches_eval_generate(tmp_path):
    import shlex

    from dryrun import REPO, SNAKEMAKE

    from motab.evaluation.generate import build_parser

    override = tmp_path / "over_long.yaml"
    override.write_text("studies:\n  toy:\n    eval:\n      over_long: truncate\n")
    plan = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--configfile", str(override)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    marker = "motab eval-generate "
    lines = [line[line.index(marker) :] for line in plan.stdout.splitlines() if marker in line]
    assert lines, plan.stdout[-2000:]
    for line in lines:
        command = shlex.split(line.split(" > ")[0])
        assert build_parser().parse_args(command[2:]).over_long == "truncate"
