"""Every `sglang.launch_server` line of the paper studies' SLURM plan, parsed by SGLang 0.5.9's own
argument parser. SGLang is not in the test environment (its CUDA stack is the eval env's): the test
downloads the sglang 0.5.9 wheel and the three small packages its server_args module imports
(pybase64, pyzmq, partial-json-parser) from PyPI into a cache, without dependencies (about 10 MB)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from dryrun import REPO
from slurm_plan import paper_jobs

from motab.serving.launch import render_command
from motab.serving.placement import from_json, server_args

pytestmark = pytest.mark.slow

WHEELS = ("sglang==0.5.9", "pybase64==1.5.1", "pyzmq==26.4.0", "partial-json-parser==0.2.1.1.post7")
CACHE = Path(os.environ.get("MOTAB_TEST_CACHE", Path.home() / ".cache" / "motab-tests")) / "sglang-0.5.9"


@pytest.fixture(scope="module")
def sglang_path() -> Path:
    site = CACHE / "site"
    if not (site / "sglang" / "srt" / "server_args.py").is_file():
        wheels = CACHE / "wheels"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "-d", str(wheels), *WHEELS],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, f"pip download {' '.join(WHEELS)} failed:\n{proc.stderr[-2000:]}"
        for wheel in sorted(wheels.glob("*.whl")):
            zipfile.ZipFile(wheel).extractall(site)
    return site


def launch_lines() -> list[tuple[str, list[str]]]:
    """(job, argv after `python -m sglang.launch_server`) of every server a planned job starts, with
    the job's placement flags (motab.serving.launch.serving)."""
    out = []
    for job in paper_jobs():
        words = shlex.split(job.command)
        flags = dict(zip(words, words[1:]))
        placements = from_json(flags.get("--placement"))
        for flag in ("--server-command", "--student-server-command", "--teacher-server-command"):
            if "sglang" not in flags.get(flag, ""):
                continue
            argv = render_command(flags[flag], python="python", model="/models/m", host="127.0.0.1", port=30000)
            role = {"--student-server-command": "student", "--teacher-server-command": "teacher"}.get(
                flag, next((r for r in placements if r != "student"), None)
            )
            if role in placements:
                argv += server_args(argv, placements[role])
            assert argv[:3] == ["python", "-m", "sglang.launch_server"], argv
            out.append((f"{job.name} {flag}", argv[3:]))
    return out


def test_sglang_parses_every_launch_server_line_of_the_plan(sglang_path):
    lines = launch_lines()
    assert len(lines) >= 56 and any("--teacher-server-command" in name for name, _ in lines)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("sglang_check.py"))],
        input=json.dumps([argv for _, argv in lines] + [["--model-path", "m", "--tp-size", "four"]]),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(sglang_path)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    *answers, bad = json.loads(proc.stdout.splitlines()[-1])
    assert bad and "tp-size" in bad  # the parser does reject what it does not accept
    rejected = {name: error for (name, _), error in zip(lines, answers) if error}
    assert not rejected, rejected
