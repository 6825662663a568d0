"""`motab sft` resumes a killed run only from a checkpoint its own inputs made and that holds the
whole training state; otherwise it stops with one line naming the change (or the missing state) and
the folder to remove, and deletes nothing."""

from __future__ import annotations

import json

import pytest
from test_sft import PARAMS, sft_argv, write_data

from motab.training import sft

SAVING = PARAMS | {"num_train_epochs": 2, "save_steps": 2, "logging_steps": 1}


def crashed_sft(model, data, out, params: dict, monkeypatch) -> None:
    """A run that trained and saved checkpoints, then died before finishing its output folder."""
    monkeypatch.setattr(sft, "_keep_epochs", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError, match="crash"):
        sft.main(sft_argv(model, data, out, params))
    monkeypatch.undo()
    assert sft.latest_checkpoint(out.with_name(f".{out.name}.tmp")) is not None and not out.exists()


@pytest.mark.slow
def test_a_dataset_replaced_at_the_same_path_stops_the_resume(tiny_model_dir, tmp_path, monkeypatch):
    write_data(tmp_path / "data", n=16)
    out, work = tmp_path / "ckpt", tmp_path / ".ckpt.tmp"
    crashed_sft(tiny_model_dir, tmp_path / "data", out, SAVING, monkeypatch)
    write_data(tmp_path / "data", n=24)  # what a rerun of the data stage does: other rows, same path
    with pytest.raises(SystemExit, match=rf"^{work}: its checkpoint-\d+ made with other settings \(dataset_sha256: "):
        sft.main(sft_argv(tiny_model_dir, tmp_path / "data", out, SAVING))
    assert sft.latest_checkpoint(work) is not None and not out.exists()  # nothing deleted, nothing trained


@pytest.mark.slow
def test_a_changed_setting_keeps_the_killed_runs_checkpoints_and_names_the_setting(
    tiny_model_dir, tmp_path, monkeypatch
):
    write_data(tmp_path / "data", n=16)
    out, work = tmp_path / "ckpt", tmp_path / ".ckpt.tmp"
    crashed_sft(tiny_model_dir, tmp_path / "data", out, SAVING, monkeypatch)
    saved = sft.latest_checkpoint(work)
    with pytest.raises(SystemExit, match=rf"llamafactory.learning_rate: 0.005 -> 0.001\); .*remove {work} to start"):
        sft.main(sft_argv(tiny_model_dir, tmp_path / "data", out, SAVING | {"learning_rate": 1e-3}))
    assert sft.latest_checkpoint(work) == saved and (saved / "optimizer.pt").is_file()
    # how often state is saved is not a setting of the result: the rerun resumes
    assert sft.main(sft_argv(tiny_model_dir, tmp_path / "data", out, SAVING | {"save_steps": 3})) == 0
    assert json.loads((out / "sft_run.json").read_text())["resumed_from"] == saved.name


@pytest.mark.slow
def test_a_weights_only_checkpoint_is_not_resumed(tiny_model_dir, tmp_path, monkeypatch):
    """save_only_model: true (no optimizer, scheduler or RNG state): resuming would train another model."""
    write_data(tmp_path / "data", n=16)
    out, work = tmp_path / "ckpt", tmp_path / ".ckpt.tmp"
    params = PARAMS | {"num_train_epochs": 2, "save_strategy": "epoch", "save_only_model": True}
    crashed_sft(tiny_model_dir, tmp_path / "data", out, params, monkeypatch)
    with pytest.raises(SystemExit, match=rf"checkpoint-\d+: holds the weights only .*remove {work} to start afresh"):
        sft.main(sft_argv(tiny_model_dir, tmp_path / "data", out, params))
    assert sft.latest_checkpoint(work) is not None
