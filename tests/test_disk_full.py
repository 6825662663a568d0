"""A KD save that runs out of disk says "No space left on device" and the folder it was writing, in one
line (torch's writer said only "[enforce fail at inline_container.cc:672] unexpected pos"). Real
failures: a 256 kB tmpfs where the test may mount one, and the file size limit (ulimit -f) anywhere."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_onpolicy import kd_argv


def kd_train(kd_setup, out: Path, preexec=None) -> subprocess.CompletedProcess:
    argv = kd_argv(kd_setup, out, "--save-steps", "1", steps=2)
    return subprocess.run(
        [sys.executable, "-m", "motab", "kd-train", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
        preexec_fn=preexec,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("motab kd-train: [Errno"), result.stderr[-3000:]
    return last


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_full_disk_during_a_kd_save_names_the_folder(kd_setup, tiny_tmpfs):
    last = one_line(kd_train(kd_setup, tiny_tmpfs))
    assert "No space left on device while writing" in last and str(tiny_tmpfs / "model.partial") in last
    assert not list((tiny_tmpfs / "model.partial").glob(".*"))  # no half-written temporary left


@pytest.mark.slow
def test_the_file_size_limit_during_a_kd_save_names_the_folder(kd_setup, tmp_path):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    last = one_line(kd_train(kd_setup, tmp_path, preexec=limit))
    assert "File too large while writing" in last and str(tmp_path / "model.partial") in last
