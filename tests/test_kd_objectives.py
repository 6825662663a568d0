"""The KD objective registry: config blocks are checked against it (the schema does not enumerate
builtin losses), and a loss added through it trains with no other change."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from test_onpolicy import kd_argv, read_csv

from motab.plan import workflow_config
from motab.training.kd import command as kd_command
from motab.training.kd.config import KDConfig
from motab.training.kd.objectives import LOSSES, Loss, divergence, register
from motab.training.kd_config import kd_config_errors

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "engine": "builtin",
    "steps": 2,
    "prompts_per_step": 2,
    "samples_per_prompt": 2,
    "max_new_tokens": 8,
    "temperature": 1.0,
    "lr": 1e-4,
    "seed": 0,
}


def kd_schema() -> dict:
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    return schema["$defs"]["study"]["properties"]["kd"]["additionalProperties"]


def test_the_schema_leaves_builtin_loss_names_to_the_registry():
    """A new loss needs no schema edit: the schema takes any string for a builtin block's loss, and the
    start-up check accepts exactly the registry's names (KDFlow's own losses stay enumerated)."""
    block = kd_schema()
    assert block["properties"]["loss"] == {"type": "string"}
    assert set(block["then"]["properties"]["loss"]["enum"]) == {"rkl", "akl", "dskd"}  # engine kdflow
    config = {"studies": {"s": {"kd": {name: {**BASE, "loss": name} for name in LOSSES}}}}
    assert kd_config_errors(config) == []
    config["studies"]["s"]["kd"]["typo"] = {**BASE, "loss": "rkl_on_policy"}
    expected = f"studies.s.kd.typo: loss: expected one of {', '.join(LOSSES)}, found 'rkl_on_policy'"
    assert kd_config_errors(config) == [expected]


def test_every_builtin_block_of_config_yaml_is_a_valid_kd_config():
    config = workflow_config(ROOT)  # config.yaml + studies/*.yaml
    blocks = {
        f"{s}.{name}": block
        for s, study in config["studies"].items()
        for name, block in study.get("kd", {}).items()
        if block["engine"] == "builtin"
    }
    assert blocks and all(block["loss"] in LOSSES for block in blocks.values())
    assert not [e for e in kd_config_errors(config) if ".kd." in e]


def test_every_loss_setting_has_a_default_a_help_and_one_type():
    """Every loss's params can be left out of a block, and a setting shared by two losses means one thing."""
    seen = {}
    for name, loss in LOSSES.items():
        assert dataclasses.is_dataclass(loss.params) and loss.units in ("tokens", "sequences"), name
        for f in dataclasses.fields(loss.params):
            assert f.default is not dataclasses.MISSING and f.metadata.get("help"), (name, f.name)
            assert seen.setdefault(f.name, (f.type, f.default)) == (f.type, f.default), (name, f.name)
        assert (
            KDConfig(
                loss=name, steps=1, samples_per_prompt=1, max_new_tokens=1, temperature=1.0, lr=1.0, seed=0
            ).loss_params
            == loss.params()
        )


def test_a_loss_added_through_the_registry_trains(kd_setup, tmp_path):
    """docs/extending.md's example ("half fkl + half rkl"), registered here: kd-train takes it by name with no
    other change, and on the same first-step rollouts its loss is the mean of fkl's and rkl's."""
    fkl, rkl = divergence("fkl"), divergence("rkl")

    def half_fkl_rkl(batch, params):
        return 0.5 * fkl(batch, params) + 0.5 * rkl(batch, params)

    register("half_fkl_rkl", Loss(LOSSES["fkl"].params, "tokens", half_fkl_rkl))
    first = {}
    try:
        for loss in ("half_fkl_rkl", "fkl", "rkl"):
            assert kd_command.main(kd_argv(kd_setup, tmp_path / loss, loss=loss, steps=2)) == 0
            rows = read_csv(tmp_path / loss / "log.csv")
            assert len(rows) == 2
            first[loss] = float(rows[0]["loss"])
    finally:
        del LOSSES["half_fkl_rkl"]  # the registry is the process's: leave it as the other tests expect
    assert first["half_fkl_rkl"] == pytest.approx((first["fkl"] + first["rkl"]) / 2, abs=2e-6)
    assert (tmp_path / "half_fkl_rkl" / "model" / "kd_config.json").is_file()


def test_the_config_check_reads_the_registry_without_torch():
    """The Snakefile imports kd_config at parse time: the registry and KDConfig must not load torch."""
    import subprocess
    import sys

    code = (
        "import sys, motab.training.kd_config, motab.config_check; assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
