"""Server start: the time a job waits for its inference server is the study's
(resources.<stage>.server_startup_s, a resource: raising it reruns nothing), and when it runs out the
job stops with one message naming the model and the server's log, without a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SLOW_SERVER = "{python} -c 'import time; print(\"loading {model}\", flush=True); time.sleep(300)'"


def test_a_server_that_never_answers_stops_the_job_naming_the_model_and_log(tiny_model_dir, tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"id": "p1", "input": "1+1?", "answer": "2", "solution": "", "source": "t"}) + "\n")
    log = tmp_path / "server.log"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "motab", "eval-generate", "--model", str(tiny_model_dir), "--problems", str(problems)]
        + ["--output", str(tmp_path / "out.jsonl"), "--server-command", SLOW_SERVER, "--server-log", str(log)]
        + ["--server-startup-timeout", "3"],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert f"the server of {tiny_model_dir} did not answer" in proc.stderr and "within 3 s" in proc.stderr
    assert f"its log: {log}" in proc.stderr and "server_startup_s" in proc.stderr
    assert "Traceback" not in proc.stderr and f"loading {tiny_model_dir}" in log.read_text()
    assert time.monotonic() - start < 120  # the limit, not the server's 300 s, ended it


def test_the_studys_limit_reaches_every_server_job(tmp_path):
    override = tmp_path / "startup.yaml"
    override.write_text("studies:\n  toy:\n    resources:\n      eval_generate: {server_startup_s: 45}\n")
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--configfile", "config.yaml", str(override)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    limits = {
        command.split()[0]: re.search(r"--server-startup-timeout (\d+)", command).group(1)
        for command in re.findall(r"\bmotab (synth --method .*|eval-generate .*)", proc.stdout)
    }
    assert limits == {"synth": "1200", "eval-generate": "45"}
