"""Inputs a user may hand the pipeline that are valid but unusual (a UTF-8 BOM), and saved state that
must not run code when loaded."""

import json
import pathlib

import pytest

from motab.data.prepare import normalize_rows
from motab.jsonio import read_jsonl


def test_a_bom_prefixed_utf8_jsonl_is_read(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps({"question": "What is 1+1?", "answer": "2"}).encode()
        + b"\n"
        + json.dumps({"question": "What is 2+2?", "answer": "4"}).encode()
        + b"\n"
    )
    rows = normalize_rows(str(path), "x")
    assert [r["answer"] for r in rows] == ["2", "4"]
    assert read_jsonl(path)[0]["question"] == "What is 1+1?"


class _RunsCode:
    """A pickled object whose loading touches a file: what a tampered state.pt could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_training_state_loads_without_running_pickled_code(tmp_path):
    import torch

    from motab.training.kd.checkpoint import load_training_state, save_training_state

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    saved = save_training_state(
        tmp_path / "partial",
        3,
        model,
        optimizer,
        {
            "rng": [torch.get_rng_state()],
            "cuda_rng": None,
            "rows": [{"step": 1, "loss": 0.5, "loss_name": "fkl"}],
            "resume_key": {
                "lr": 1e-4,
                "loss": "fkl",
                "steps": 4,
                "teacher": None,
                "prompts": ["a.jsonl"],
                "processes": 1,
            },
        },
    )
    state = load_training_state(saved, model, optimizer)
    assert (
        state["step"] == 3 and state["rows"][0]["loss"] == 0.5 and torch.equal(state["rng"][0], torch.get_rng_state())
    )
    marker = tmp_path / "ran"
    torch.save({"step": 3, "payload": _RunsCode(marker)}, saved / "state.pt")
    with pytest.raises(Exception, match="Weights only load failed|weights_only"):
        load_training_state(saved, model, optimizer)
    assert not marker.exists()
