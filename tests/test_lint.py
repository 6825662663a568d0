"""The lint CI runs (scripts/lint.sh): the repository passes it, and a finding fails it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_the_repository_passes_the_lint_that_ci_runs():
    proc = subprocess.run(["bash", "scripts/lint.sh"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_a_lint_finding_fails_it(tmp_path):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "bad.py").write_text("import os\n\n\ndef f(x):\n    return  x\n")
    check = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 1 and "F401" in check.stdout
    fmt = subprocess.run([str(BIN / "ruff"), "format", "--check", "."], cwd=tmp_path, capture_output=True, text=True)
    assert fmt.returncode == 1 and "bad.py" in fmt.stdout
