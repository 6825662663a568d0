"""The resume contract's parts: keys, fingerprints, the one-line refusal, pruning of between-epoch saves."""

from __future__ import annotations

import json
import os

import pytest

from motab.children import snakemake_ancestor
from motab.resume_contract import changes, folder_sha256, model_fingerprint, refuse_if_changed
from motab.training.lf_train import prune_between_epochs


def test_changes_name_each_nested_field_and_the_refusal_is_one_line(tmp_path):
    old = {"llamafactory": {"learning_rate": 0.005, "seed": 0}, "model_files": "aa"}
    new = {"llamafactory": {"learning_rate": 0.001, "seed": 0}, "model_files": "bb"}
    assert changes(old, new) == ["llamafactory.learning_rate: 0.005 -> 0.001", 'model_files: "aa" -> "bb"']
    with pytest.raises(SystemExit) as stop:
        refuse_if_changed(old, new, tmp_path / "run.partial", "its step-3")
    assert "\n" not in str(stop.value) and str(stop.value).startswith(f"{tmp_path}/run.partial: its step-3 made")
    refuse_if_changed({"teachers": ["t"]}, {"teachers": ("t",)}, tmp_path, "x")  # a tuple is the saved list
    with pytest.raises(SystemExit, match="without a resume key"):
        refuse_if_changed(None, new, tmp_path, "its step-3")


def test_a_model_rewritten_at_the_same_path_and_other_data_get_other_fingerprints(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"a" * 64)
    before = model_fingerprint(model)
    os.utime(model / "model.safetensors", ns=(1, 1))  # rewritten: same name and size, a new time
    assert model_fingerprint(model) != before
    assert model_fingerprint("Qwen/Qwen3-4B") is None  # a hub id: the hub's revision, not ours
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"a": 1}\n')
    first = folder_sha256(tmp_path / "data")
    (tmp_path / "data" / "train.jsonl").write_text('{"a": 2}\n')
    assert folder_sha256(tmp_path / "data") != first


def test_between_epoch_saves_are_pruned_and_epoch_ends_kept(tmp_path):
    for step, epoch in ((4, 1.0), (6, 1.5), (7, 1.75), (9, 2.25)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"epoch": epoch}))
    prune_between_epochs(tmp_path, newest=9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4", "checkpoint-9"]


def test_a_process_not_started_by_snakemake_has_no_snakemake_to_die_with():
    assert snakemake_ancestor() is None
