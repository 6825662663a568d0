"""The `evalscope` eval engine: EvalScope's own TaskConfig against the embedded server's OpenAI
endpoint on a handful of real MATH-500 problems, converted into the native eval JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from motab.evaluation.evalscope_engine import main, to_responses
from motab.jsonio import DataError

REPO = Path(__file__).resolve().parents[1]


def evalscope_python() -> str | None:
    """An interpreter with evalscope: $MOTAB_EVALSCOPE_PYTHON, this one, or the repo's .venv-evalscope."""
    candidates = [
        os.environ.get("MOTAB_EVALSCOPE_PYTHON"),
        sys.executable,
        str(REPO / ".venv-evalscope" / "bin" / "python"),
    ]
    for python in filter(None, candidates):
        if (
            Path(python).exists()
            and subprocess.run([python, "-c", "import evalscope"], capture_output=True).returncode == 0
        ):
            return python
    return None


def test_reviews_grouped_by_problem_text_in_sample_order():
    problems = [
        {"id": "a", "input": "What is 1+1?", "answer": "2"},
        {"id": "b", "input": "What is 1+1? Then 3?", "answer": "5"},
    ]
    reviews = [
        {
            "index": i,
            "prompt": f"{text}\nPlease reason step by step.",
            "response": f"r{i}",
            "score": s,
            "pred": None,
            "finish": "stop",
            "tokens": 3,
            "where": f"f.jsonl:{i + 1}",
        }
        for i, (text, s) in enumerate(
            [("What is 1+1? Then 3?", 1.0), ("What is 1+1?", 0.0), ("What is 1+1?", 1.0), ("What is 1+1? Then 3?", 0.0)]
        )
    ]
    rows = to_responses(reviews, problems, n=2)
    assert [r["id"] for r in rows] == ["a", "b"]  # the longer problem text wins its own prompts
    assert rows[0]["responses"] == ["r1", "r2"] and rows[1]["responses"] == ["r0", "r3"]
    assert rows[1]["evalscope"]["scores"] == [1.0, 0.0] and rows[0]["gold"] == "2"
    with pytest.raises(DataError, match=r"expected 3 EvalScope samples \(one per run\), found 2"):
        to_responses(reviews, problems, n=3)
    stray = [dict(reviews[0], prompt="Unrelated?", where="f.jsonl:9")]
    with pytest.raises(DataError, match=r"f\.jsonl:9:messages: prompt matches no problem"):
        to_responses(stray, problems, n=1)


@pytest.mark.slow
def test_evalscope_against_embedded_server_gives_native_eval_json(tiny_model_dir, shared_data, tmp_path):
    python = evalscope_python()
    if python is None:
        pytest.skip(
            "evalscope is not installed: pip install evalscope==1.14.1 (requirements.lock.txt), or set "
            "MOTAB_EVALSCOPE_PYTHON to an interpreter that has it"
        )
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    responses, work = tmp_path / "seed0.evalscope.responses.jsonl", tmp_path / "seed0.evalscope"
    proc = subprocess.run(
        [
            python,
            "-m",
            "motab",
            "eval-evalscope",
            "--model",
            str(tiny_model_dir),
            "--benchmark-file",
            str(shared_data / "math500" / "test.jsonl"),
            "--format",
            "math500",
            "--name",
            "math500",
            "--dataset",
            "math_500",
            "--output",
            str(responses),
            "--work-dir",
            str(work),
            "--limit",
            "1",
            "--n",
            "2",
            "--max-tokens",
            "8",
            "--temperature",
            "0.6",
            "--seed",
            "0",
            "--batch-size",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    configs = [json.loads((work / f"sample{i}" / "task_config.json").read_text()) for i in range(2)]
    assert all(c["eval_type"] == "openai_api" and c["api_url"].endswith("/v1") and c["repeats"] == 1 for c in configs)
    assert configs[0]["dataset_args"]["math_500"]["dataset_id"] == str((shared_data / "math500").resolve())
    assert configs[0]["seed"] != configs[1]["seed"]  # one seed per sample: the samples can differ
    rows = [json.loads(line) for line in responses.read_text().splitlines()]
    gold = {
        json.loads(line)["unique_id"]: json.loads(line)["answer"]
        for line in (shared_data / "math500" / "test.jsonl").read_text().splitlines()
    }
    assert len(rows) == 5  # EvalScope's limit applies per MATH-500 level: 1 x 5
    assert all(row["id"] in gold and row["gold"] == gold[row["id"]] for row in rows)
    assert all(len(row["responses"]) == 2 and len(row["evalscope"]["scores"]) == 2 for row in rows)
    assert any(row["responses"][0] for row in rows)  # the model's real text came through EvalScope
    assert any(row["responses"][0] != row["responses"][1] for row in rows)
    assert all(set(row["finish_reasons"]) <= {"stop", "length"} and all(row["completion_tokens"]) for row in rows)
    out = tmp_path / "seed0.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "motab",
            "eval-grade",
            "--responses",
            str(responses),
            "--output",
            str(out),
            "--run",
            "tiny",
            "--benchmark",
            "math500",
            "--seed",
            "0",
        ],
        check=True,
        env=env,
        cwd=tmp_path,
    )
    result = json.loads(out.read_text())
    assert set(result) >= {"run", "benchmark", "seed", "n_samples", "metrics", "samples", "provenance"}
    assert result["n_samples"] == 2 and set(result["metrics"]) >= {"pass@2", "avg@2", "maj@2", "mean_words"}
    assert "evalscope_acc" in result["metrics"]  # EvalScope's own verdicts, beside ours


def test_jobs_json_names_a_bad_entry(capsys):
    job = {
        "benchmark_file": "b.jsonl",
        "format": "math500",
        "name": "math500",
        "dataset": "math_500",
        "output": "o.jsonl",
        "work_dir": "w",
    }
    for jobs, message in (
        ([dict(job, wrok_dir="w")], "--jobs-json[0]: needs benchmark_file"),
        ([job, dict(job, output="p.jsonl", dataset_args=[1])], "--dataset-args: expected a JSON object"),
        ([job, dict(job, seed=1)], "two jobs write the same output"),
        ([dict(job, output="p.jsonl", n=0)], "--n must be at least 1, found 0"),
    ):
        with pytest.raises(SystemExit):
            main(["--model", "m", "--jobs-json", json.dumps(jobs)])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", "m", "--jobs-json", json.dumps([job]), "--output", "x.jsonl"])
    assert "give --jobs-json or" in capsys.readouterr().err


@pytest.mark.slow
def test_one_server_serves_a_runs_evalscope_jobs_with_the_same_bytes(tiny_model_dir, shared_data, tmp_path):
    """--jobs-json: two seeds of MATH-500 through EvalScope on ONE server start give the bytes that a
    separate start gives for that seed (grouping a run's benchmarks x seeds changes no result)."""
    python = evalscope_python()
    if python is None:
        pytest.skip("evalscope is not installed: pip install evalscope==1.14.1 (requirements.lock.txt)")
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
    )
    common = ["--model", str(tiny_model_dir), "--limit", "1", "--n", "1", "--max-tokens", "8", "--batch-size", "2"]
    job = {
        "benchmark_file": str(shared_data / "math500" / "test.jsonl"),
        "format": "math500",
        "name": "math500",
        "dataset": "math_500",
    }
    jobs = [
        dict(job, output=str(tmp_path / f"seed{s}.jsonl"), work_dir=str(tmp_path / f"seed{s}"), seed=s) for s in (0, 1)
    ]
    grouped = [
        python,
        "-m",
        "motab",
        "eval-evalscope",
        *common,
        "--jobs-json",
        json.dumps(jobs),
        "--server-log",
        str(tmp_path / "grouped.log"),
    ]
    alone = [
        python,
        "-m",
        "motab",
        "eval-evalscope",
        *common,
        "--benchmark-file",
        job["benchmark_file"],
        "--format",
        "math500",
        "--name",
        "math500",
        "--dataset",
        "math_500",
        "--seed",
        "1",
        "--output",
        str(tmp_path / "alone1.jsonl"),
        "--work-dir",
        str(tmp_path / "alone1"),
    ]
    for argv in (grouped, alone):
        proc = subprocess.run(argv, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "grouped.log").read_text().count("[motab] starting:") == 1
    assert (tmp_path / "seed1.jsonl").read_bytes() == (tmp_path / "alone1.jsonl").read_bytes()
    assert (tmp_path / "seed0.jsonl").read_bytes() != (tmp_path / "seed1.jsonl").read_bytes()
    seeds = [json.loads((tmp_path / f"seed{s}" / "sample0" / "task_config.json").read_text())["seed"] for s in (0, 1)]
    assert seeds[0] != seeds[1]


def test_engine_evalscope_plans_evalscope_runs_graded_natively(tmp_path, shared_data, shared_data_config):
    """`engine: evalscope` swaps generation for EvalScope runs; grading and tables stay as they are."""
    override = tmp_path / "evalscope.yaml"
    override.write_text(
        "studies:\n  toy:\n    eval: {engine: evalscope, benchmarks: [math500],"
        " evalscope_python: /opt/evalscope/bin/python}\n"
    )
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run(
        [snakemake, "-n", "-p", "--configfile", "config.yaml", str(shared_data_config), str(override)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "rule eval_evalscope:" in out and "rule eval_generate:" not in out and "rule eval_grade:" in out
    assert "/opt/evalscope/bin/python -m motab eval-evalscope" in out and "--dataset math_500" in out
    assert f"--benchmark-file {shared_data}/math500/test.jsonl --format math500" in out
    assert "results/toy/eval/teacher/math500/seed0.evalscope.responses.jsonl" in out


def test_engine_evalscope_with_group_run_plans_one_job_per_run(tmp_path):
    """`group: run` with EvalScope: one eval_evalscope_run job per run, one command (one server)
    for all its benchmarks x seeds, the per-file outputs and grading unchanged."""
    override = tmp_path / "evalscope.yaml"
    override.write_text(
        "studies:\n  toy:\n    eval: {engine: evalscope, group: run, benchmarks: [math500, gsm8k],"
        " per_benchmark: {gsm8k: {n: 2}}}\n"
    )
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    proc = subprocess.run(
        [snakemake, "-n", "-p", "--configfile", "config.yaml", str(override)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "rule eval_evalscope:" not in out and "rule eval_generate" not in out
    commands = [line for line in out.splitlines() if " -m motab eval-evalscope " in line]
    runs = {line.split("results/toy/eval/")[1].split("/")[0] for line in commands}
    assert len(commands) == len(runs) == out.count("rule eval_evalscope_run_toy:") > 1
    jobs = json.loads(commands[0].split("--jobs-json '")[1].split("'")[0])
    assert [(job["name"], job["seed"], job["n"]) for job in jobs] == [
        ("math500", 0, 4),
        ("math500", 1, 4),
        ("gsm8k", 0, 2),
        ("gsm8k", 1, 2),
    ]
    assert jobs[2]["dataset"] == "gsm8k" and jobs[2]["dataset_args"] == {"subset_list": ["default"]}
    assert all(job["output"] == job["work_dir"] + ".responses.jsonl" for job in jobs)
    assert out.count("rule eval_grade:") == 4 * len(runs)
