"""One reader of a stage's settings file (motab.settings_file) for `sft`, `synth` and `kd-train`:
YAML or JSON, JSON numbers kept as numbers, and a bad file named in one line."""

from __future__ import annotations

import json

import pytest

from motab.errors import UserError
from motab.settings_file import check_settings, read_settings, settings_in_file
from motab.training.kd import command as kd_command

RUNTIME = ["--student", "s", "--teacher", "t", "--prompts", "p", "--output", "o"]
KD_BLOCK = {
    "engine": "builtin",
    "loss": "rkl",
    "steps": 3,
    "samples_per_prompt": 2,
    "max_new_tokens": 16,
    "temperature": 0.6,
    "lr": 1e-05,
    "seed": 0,
    "prompts_per_step": 4,
}
SFT_BLOCK = {
    "finetuning_type": "full",
    "cutoff_len": 256,
    "per_device_train_batch_size": 32,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-05,
    "num_train_epochs": 8,
    "lr_scheduler_type": "cosine",
    "seed": 0,
}


def test_kd_train_reads_a_yaml_settings_file_as_sft_and_synth_do(tmp_path):
    yaml_file = tmp_path / "kd.yaml"
    yaml_file.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in KD_BLOCK.items() if key != "lr"))
    from_yaml, _ = kd_command.parse_args([*RUNTIME, "--config", str(yaml_file), "--lr", "1e-05"])
    from_json, _ = kd_command.parse_args([*RUNTIME, "--config-json", json.dumps(KD_BLOCK)])
    assert from_yaml == from_json and from_json.lr == 1e-05


def test_a_json_settings_file_keeps_its_numbers(tmp_path):
    """json.dumps writes 1e-05, which YAML 1.1 reads as a string: a checkpoint's kd_config.json, or
    an sft settings file written by a script, is read as JSON."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(SFT_BLOCK))
    assert settings_in_file(str(path), "sft") == SFT_BLOCK and SFT_BLOCK["learning_rate"] == 1e-05
    check_settings(read_settings(str(path), None, "sft"), "sft", str(path))  # a number, as the schema says
    (tmp_path / "kd_config.json").write_text(json.dumps(KD_BLOCK))
    config, _ = kd_command.parse_args([*RUNTIME, "--config", str(tmp_path / "kd_config.json")])
    assert config.lr == 1e-05


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: [1\nsteps: 3\n", r"kd\.yaml:\d+: not valid YAML/JSON"),
        ("- 1\n- 2\n", r"kd\.yaml: expected a mapping of KD settings, found list"),
    ],
)
def test_a_bad_settings_file_is_named_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "kd.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        settings_in_file(str(path), "KD")
    with pytest.raises(SystemExit):
        kd_command.parse_args([*RUNTIME, "--config", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and err[-1].startswith("motab kd-train: error: ")


def test_a_bad_json_flag_is_named(capsys):
    with pytest.raises(SystemExit):
        kd_command.parse_args([*RUNTIME, "--config-json", "{lr: 1}"])
    assert "--config-json: not valid JSON" in capsys.readouterr().err
