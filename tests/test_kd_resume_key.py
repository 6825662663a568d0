"""KD resumes only from state that its own inputs made: a student rebuilt at the same path, or other
prompts, stop the rerun with one line naming the change and the folder to remove."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_onpolicy import kd_argv, run, weights

from motab.training.kd import command as kd_command
from motab.training.kd import loop as kd_loop


def crashed_run(kd_setup, out, monkeypatch, *extra) -> None:
    """A run that saved its state at step 3 of 4 and crashed before the final save."""
    monkeypatch.setattr(kd_loop, "atomic_save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError, match="crash"):
        run(kd_setup, out, "--save-steps", "3", *extra, steps=4)
    monkeypatch.undo()
    assert (out / "model.partial" / "step-3").is_dir()


def own_student(kd_setup, tmp_path) -> dict:
    """kd_setup with a copy of the student that a test may replace (the fixture is shared)."""
    shutil.copytree(kd_setup["student"], tmp_path / "student")
    return kd_setup | {"student": tmp_path / "student"}


def test_a_student_replaced_at_the_same_path_stops_the_resume(kd_setup, tmp_path, monkeypatch):
    setup = own_student(kd_setup, tmp_path)
    crashed_run(setup, tmp_path / "run", monkeypatch)
    # what an upstream rerun does: new weights written at the same path
    shutil.copy(kd_setup["teacher"] / "model.safetensors", setup["student"] / "model.safetensors")
    partial = tmp_path / "run" / "model.partial"
    with pytest.raises(SystemExit, match=rf"^{partial}: .*step-3.* \(student_files: .*remove {partial} to start"):
        run(setup, tmp_path / "run", "--save-steps", "3", steps=4)
    assert not (tmp_path / "run" / "model").exists() and (partial / "step-3").is_dir()  # nothing deleted

    # a fresh run from the new student, after removing the folder as told, trains the new student
    shutil.rmtree(partial)
    fresh, _ = run(setup, tmp_path / "run", "--save-steps", "3", steps=4)
    reference, _ = run(setup, tmp_path / "reference", steps=4)
    assert all(torch.equal(a, b) for a, b in zip(weights(fresh).values(), weights(reference).values()))


def test_other_prompts_at_the_same_path_stop_the_resume(kd_setup, tmp_path, monkeypatch):
    prompts = tmp_path / "prompts.jsonl"
    shutil.copy(kd_setup["prompts"], prompts)
    setup = kd_setup | {"prompts": prompts}
    crashed_run(setup, tmp_path / "run", monkeypatch)
    lines = prompts.read_text().splitlines()
    prompts.write_text("\n".join(reversed(lines)) + "\n")
    with pytest.raises(SystemExit, match=r"prompts_sha256: \["):
        run(setup, tmp_path / "run", "--save-steps", "3", steps=4)


def test_a_runtime_option_does_not_stop_the_resume(kd_setup, tmp_path, monkeypatch, capsys):
    crashed_run(kd_setup, tmp_path / "run", monkeypatch)
    # threads and the progress CSV do not change the bytes of the result
    argv = kd_argv(kd_setup, tmp_path / "run", "--save-steps", "3", steps=4)
    argv[argv.index("--threads") + 1] = "2"
    assert kd_command.main(argv) == 0
    assert "resuming from" in capsys.readouterr().out
