"""A synthesis job killed with SIGKILL mid-run and rerun ends with exactly the lines of an
uninterrupted run: none lost, none doubled, and its server did not outlive it."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from motab.jsonio import write_jsonl

PARAMS = json.dumps({"num_responses": 2, "temperature": 1.0, "max_new_tokens": 16, "seed": 0, "batch_problems": 1})


def synth_cmd(problems, model, output, log):
    return [
        sys.executable,
        "-m",
        "motab",
        "synth",
        "--method",
        "teacher_only",
        "--problems",
        str(problems),
        "--teacher",
        str(model),
        "--output",
        str(output),
        "--params-json",
        PARAMS,
        "--server-log",
        str(log),
        "--max-in-flight",
        "1",
    ]


def server_alive(server_log) -> bool:
    """Whether the server this job started (named by the port in its log's start line) still runs.
    The port, not the model, names it: the session's tiny_server serves the same model."""
    started = next(line for line in server_log.read_text().splitlines() if line.startswith("[motab] starting: "))
    port = re.search(r"--port (\d+)", started).group(1)
    found = subprocess.run(["pgrep", "-f", f"motab serve .*--port {port}( |$)"], capture_output=True, text=True)
    return bool(found.stdout.strip())


@pytest.mark.slow
def test_sigkill_then_rerun_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    problems = tmp_path / "problems.jsonl"
    write_jsonl(
        problems,
        [
            {"id": f"p{i:03d}", "input": f"Compute {i} + 1.", "answer": str(i + 1), "solution": None, "source": "toy"}
            for i in range(20)
        ],
    )
    clean = tmp_path / "clean" / "out.jsonl"
    subprocess.run(synth_cmd(problems, tiny_model_dir, clean, tmp_path / "clean.log"), check=True, capture_output=True)

    killed = tmp_path / "killed" / "out.jsonl"
    partial = killed.with_name("out.jsonl.partial")
    proc = subprocess.Popen(
        synth_cmd(problems, tiny_model_dir, killed, tmp_path / "killed.log"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and (not partial.exists() or partial.read_text().count("\n") < 6):
        time.sleep(0.05)
    assert server_alive(tmp_path / "killed.log"), "the check below must see the job's server while it runs"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = partial.read_text().count("\n")
    assert 6 <= done_before < 40 and not killed.exists()
    deadline = time.time() + 15  # the server gets SIGTERM when its parent dies; give it time to exit
    while server_alive(tmp_path / "killed.log") and time.time() < deadline:
        time.sleep(0.2)
    assert not server_alive(tmp_path / "killed.log"), "the server outlived its SIGKILLed job"

    rerun = subprocess.run(
        synth_cmd(problems, tiny_model_dir, killed, tmp_path / "rerun.log"), check=True, capture_output=True, text=True
    )
    assert f"resuming from {partial}" in rerun.stdout
    lines = killed.read_text().splitlines()
    assert len(lines) == 40 == len({(json.loads(line)["id"], json.loads(line)["sample"]) for line in lines})
    assert killed.read_bytes() == clean.read_bytes()
