"""perf/kd_loss.py runs at tiny sizes (the figures come from running it at real sizes): the
chunked loss and gradient it times are the naive ones, with a separate or a shared teacher head."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "perf" / "kd_loss.py"


@pytest.mark.parametrize("head", ["separate", "shared"])
def test_benchmark_times_the_same_loss_as_the_naive_one(head):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--tokens",
            "48",
            "--vocab",
            "300",
            "--hidden",
            "16",
            "--chunk-tokens",
            "16",
            "--runs",
            "1",
            "--threads",
            "1",
            "--variants",
            "naive,fused",
            "--teacher-head",
            head,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"teacher head {head}" in proc.stdout
    losses = {name: float(v) for name, v in re.findall(r"(\S+): time .*\(loss (\S+),", proc.stdout)}
    grads = {name: float(v) for name, v in re.findall(r"(\S+): time .*\|grad W\| (\S+)\)", proc.stdout)}
    assert losses.keys() == grads.keys() == {"naive", "fused@16"}
    assert losses["fused@16"] == pytest.approx(losses["naive"], rel=1e-5)
    assert grads["fused@16"] == pytest.approx(grads["naive"], rel=1e-4)
    assert re.search(r"fused@16 / naive: time \S+ \(cpu \S+\), peak \S+ lower", proc.stdout)
