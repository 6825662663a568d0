"""eval-generate end to end: a real embedded server, three problems, two samples each."""

from __future__ import annotations

import json

from dryrun import REPO

from motab.evaluation.generate import build_payload, main, problem_seed
from motab.jsonio import write_jsonl
from motab.plan import workflow_config
from motab.serving.launch import LOCAL_SERVER

PROBLEMS = [
    {"id": "p-2", "input": "Compute 7 - 3.", "answer": "4", "solution": "7 - 3 = 4.", "source": "toy"},
    {"id": "p-0", "input": "Compute 1 + 2.", "answer": "3", "solution": "1 + 2 = 3.", "source": "toy"},
    {"id": "p-1", "input": "Compute 5 + 5.", "answer": "10", "solution": "5 + 5 = 10.", "source": "toy"},
]


def _run(model, problems, out, log, *extra):
    argv = [
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
        "8",
        "--seed",
        "3",
        "--batch-problems",
        "2",
        "--max-in-flight",
        "2",
        "--server-command",
        LOCAL_SERVER + " --threads 1",
        "--server-log",
        str(log),
        *extra,
    ]
    assert main(argv) == 0


def test_eval_generate_end_to_end_identical_whatever_the_batching(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from motab.chat import build_prompt

    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, PROBLEMS)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _run(tiny_model_dir, problems, first, tmp_path / "a.log")
    _run(tiny_model_dir, problems, second, tmp_path / "b.log", "--batch-problems", "3")  # p-0 now shares with p-2

    assert first.read_bytes() == second.read_bytes()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p-0", "p-1", "p-2"]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for row, problem in zip(rows, sorted(PROBLEMS, key=lambda p: p["id"])):
        assert set(row) == {"id", "input", "gold", "prompt", "responses", "finish_reasons", "completion_tokens"}
        assert row["gold"] == problem["answer"] and row["input"] == problem["input"]
        assert row["prompt"] == build_prompt(tok, problem["input"])
        assert len(row["responses"]) == len(row["finish_reasons"]) == len(row["completion_tokens"]) == 2
        assert all(1 <= n <= 8 for n in row["completion_tokens"])
        assert all(reason in ("stop", "length") for reason in row["finish_reasons"])
    assert "listening on http://127.0.0.1:" in (tmp_path / "a.log").read_text()


def test_problem_seed_is_stable_and_depends_on_both_inputs():
    assert problem_seed(0, "p-0") == problem_seed(0, "p-0")
    assert len({problem_seed(0, "p-0"), problem_seed(1, "p-0"), problem_seed(0, "p-1")}) == 3
    assert 0 <= problem_seed(123, "x") < 2**31


def test_each_row_carries_its_problems_seed():
    payload = build_payload(["A", "B"], ["p-0", "p-1"], 2, 7, 0.6, 1.0, -1, 16)
    assert payload["text"] == ["A", "A", "B", "B"]
    seeds = [params["sampling_seed"] for params in payload["sampling_params"]]
    assert seeds == [problem_seed(7, "p-0")] * 2 + [problem_seed(7, "p-1")] * 2


def test_prompt_template_puts_the_problem_in_the_pwopsd_user_turn():
    from motab.evaluation.generate import user_turn

    template = workflow_config(REPO)["studies"]["pwopsd"]["eval"]["prompt"]
    assert user_turn(template, "What is {x}?") == (
        "What is {x}?\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    )


def test_one_server_serves_every_job_of_a_run_with_the_same_bytes(tiny_model_dir, tmp_path):
    """--jobs-json: two seeds (and their own n) in one server start give exactly the files that two
    separate starts give, so grouping a run's benchmarks x seeds into one job changes no result."""
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, PROBLEMS)
    _run(tiny_model_dir, problems, tmp_path / "alone3.jsonl", tmp_path / "alone3.log")
    _run(tiny_model_dir, problems, tmp_path / "alone4.jsonl", tmp_path / "alone4.log", "--seed", "4", "--n", "1")
    jobs = [
        {"problems": str(problems), "output": str(tmp_path / "seed3.jsonl"), "seed": 3},
        {"problems": str(problems), "output": str(tmp_path / "seed4.jsonl"), "seed": 4, "n": 1},
    ]
    argv = [
        "--model",
        str(tiny_model_dir),
        "--jobs-json",
        json.dumps(jobs),
        "--n",
        "2",
        "--temperature",
        "1.0",
        "--max-tokens",
        "8",
        "--batch-problems",
        "2",
        "--max-in-flight",
        "2",
        "--server-command",
        LOCAL_SERVER + " --threads 1",
        "--server-log",
        str(tmp_path / "grouped.log"),
    ]
    assert main(argv) == 0
    assert (tmp_path / "seed3.jsonl").read_bytes() == (tmp_path / "alone3.jsonl").read_bytes()
    assert (tmp_path / "seed4.jsonl").read_bytes() == (tmp_path / "alone4.jsonl").read_bytes()
    assert (tmp_path / "grouped.log").read_text().count("[motab] starting:") == 1


def test_jobs_json_names_a_bad_entry():
    import pytest

    with pytest.raises(SystemExit):
        main(["--model", "m", "--jobs-json", json.dumps([{"problems": "p.jsonl", "outptu": "x"}])])
