"""Smoke tests of the peer benchmarks (perf/peer_*.py): each runs at a tiny size in a few seconds
and prints its figures for both sides and the ours/peer ratio line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, *args: str, timeout: int = 120) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "perf" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def ratios(out: str) -> list[float]:
    return [float(x) for x in re.findall(r"^ratio ours/peer.*?: ([0-9.]+)x", out, re.MULTILINE)]


def test_grading_benchmark_prints_both_sides_and_ratio(shared_data):
    data = str(shared_data / "math500" / "test.jsonl")
    out = run_benchmark("peer_grading.py", "--limit", "30", "--runs", "1", "--processes", "1", "2", "--data", data)
    for side in ("ours", "peer"):
        for processes in (1, 2):
            assert re.search(rf"^{side} processes={processes}: +[0-9.]+ s +[0-9.]+ answers/s", out, re.MULTILINE), out
    # both sides grade the same answers the same way
    assert len(set(re.findall(r"correct=(\d+)", out))) == 1, out
    assert len(ratios(out)) == 2 and all(r > 0 for r in ratios(out)), out


def test_kd_step_benchmark_runs_ours_and_trl_gkd():
    out = run_benchmark(
        "peer_kd_step.py",
        "--prompts",
        "2",
        "--samples",
        "1",
        "--new-tokens",
        "4",
        "--steps",
        "2",
        "--runs",
        "1",
        "--hidden",
        "32",
        "--layers",
        "2",
        "--threads",
        "1",
        "--losses",
        "fkl",
    )
    assert re.search(r"^ours kd-train fkl: step +[0-9.]+ s +peak RSS +\d+ MB", out, re.MULTILINE), out
    assert re.search(r"^peer TRL GKD fkl: step +[0-9.]+ s +peak RSS +\d+ MB", out, re.MULTILINE), out
    assert re.search(r"^ratio ours/peer fkl: [0-9.]+x step time, [0-9.]+x peak memory", out, re.MULTILINE), out


def test_eval_generate_benchmark_runs_ours_and_evalscope_client(shared_data):
    pytest.importorskip("evalscope", reason="evalscope is not installed (requirements.lock.txt pins it)")
    out = run_benchmark(
        "peer_eval_generate.py",
        *("--problems", "2", "--max-tokens", "4", "--runs", "1", "--hidden", "32"),
        *("--data", str(shared_data / "math500" / "test.jsonl")),
    )
    for label in ("ours eval-generate -> motab serve", "peer EvalScope -> motab serve"):
        assert re.search(rf"^{label}: +[0-9.]+ s +[0-9.]+ tokens/s +\(tokens [1-9]", out, re.MULTILINE), out
    assert re.search(r"^ratio ours/peer EvalScope client: [0-9.]+x tokens/s", out, re.MULTILINE), out


def test_synth_benchmark_ours_only_without_released_dir():
    out = run_benchmark("peer_synth.py", "--problems", "2", "--runs", "1", "--methods", "skd", "--timeout-s", "60")
    for method in ("skd",):
        assert re.search(rf"^ours motab synth {method}: +[0-9.]+ s +[0-9.]+ rows/s +\(rows 2\)", out, re.MULTILINE), out
    assert "released scripts: not measured (no --released-dir given), so no ratio" in out
    assert not ratios(out)


def test_synth_benchmark_against_the_released_scripts():
    released = os.environ.get("MOTAB_RELEASED_DIR")
    if not released:
        pytest.skip(
            "no --released-dir: set MOTAB_RELEASED_DIR to a local checkout of github.com/wangbing1416/MOTAB "
            "(the project ships none of its code); the ours-only path is tested above"
        )
    out = run_benchmark(
        "peer_synth.py",
        "--released-dir",
        released,
        "--problems",
        "2",
        "--runs",
        "1",
        "--released-workers",
        "teacher_only=1",
        "skd=2",
        "--timeout-s",
        "60",
        timeout=300,
    )
    for script in ("1-generate-ours.py", "2-generate-baseline.py", "3-generate-teacher-only.py"):
        assert re.search(
            rf"^peer released {script} \(workers \d+\): +[0-9.]+ s +[0-9.]+ rows/s +\(rows 2\)", out, re.MULTILINE
        ), out
    assert len(ratios(out)) == 3, out


def test_liger_jsd_benchmark_measures_on_cuda_or_says_why_not():
    import importlib.util

    import torch

    out = run_benchmark(
        "peer_liger_jsd.py", "--device", "cuda", "--tokens", "256", "--hidden", "64", "--vocab", "1000", "--runs", "2"
    )
    if torch.cuda.is_available() and importlib.util.find_spec("liger_kernel") is not None:
        assert re.search(r"^ours chunked_token_divergence: +[0-9.]+ ms", out, re.MULTILINE), out
        assert re.search(r"^peer LigerFusedLinearJSD: +[0-9.]+ ms", out, re.MULTILINE), out
        assert len(ratios(out)) == 1, out
    else:
        assert re.fullmatch(
            r"skipped: (--device cuda but torch sees no CUDA device|liger-kernel is not installed .*)\n", out
        ), out
