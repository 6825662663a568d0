"""The README's test command on a user's clone, which has no ../shared/data beside it: the tests
that need the real benchmark files skip and say why; CI (MOTAB_REQUIRE_SHARED_DATA=1) fails them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEEDS_DATA = "tests/test_extraction.py::test_gsm8k_real_rows"


def pytest_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "MOTAB_REQUIRE_SHARED_DATA"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", NEEDS_DATA, "-p", "no:cacheprovider", "-q", "-rs"],
        cwd=REPO,
        env=base | {"MOTAB_SHARED_DATA": str(tmp_path / "absent")} | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_absent_data_folder_skips_with_the_reason(tmp_path):
    proc = pytest_run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout
    assert f"real benchmark files not found at {tmp_path / 'absent'} (set MOTAB_SHARED_DATA" in proc.stdout


def test_ci_fails_instead_of_skipping(tmp_path):
    proc = pytest_run(tmp_path, MOTAB_REQUIRE_SHARED_DATA="1")
    assert proc.returncode != 0
    assert "MOTAB_REQUIRE_SHARED_DATA=1 (CI) does not allow skipping these tests" in proc.stdout
    assert "MOTAB_REQUIRE_SHARED_DATA=1" in (REPO / ".ci" / "run").read_text()
