"""Sweep and per-epoch forms of config (motab/plan/sweeps.py): what a user writes, what gets planned."""

from __future__ import annotations

import pytest
from dryrun import REPO

from motab.plan import compose, workflow_config
from motab.plan.sweeps import (
    SweepError,
    expand_study,
    synth_algorithm,
    value_token,
)

SFT = {"finetuning_type": "full", "num_train_epochs": 6, "save_strategy": "epoch"}


def study(**overrides) -> dict:
    cfg = {
        "synth": {"skd": {"gamma": [0.6, 1.0], "num_responses": 2, "seed": 0}, "motab": {"theta": 1.0, "seed": 0}},
        "sft": dict(SFT),
        "runs": {
            "base": {"model": "m", "label": "Base"},
            "sft_skd": {"sft": "skd", "label": "SFT on SKD"},
            "sft_skd_f": {"sft": "skd.filtered"},
            "sft_skd_kd": {"kd": "rkl", "from": "sft_skd", "label": "KD"},
            "sft_motab": {"sft": "motab", "eval_epochs": [1, 3], "label": "SFT on MOTAB"},
        },
        "tables": {"main": {"rows": ["base", "sft_skd", "sft_skd_kd", "sft_motab"]}},
    }
    cfg.update(overrides)
    return cfg


def test_a_list_of_values_becomes_one_synthesis_sft_and_row_per_value():
    out = expand_study("s", study())
    assert sorted(out["synth"]) == ["motab", "skd_gamma0p6", "skd_gamma1p0"]
    assert out["synth"]["skd_gamma0p6"] == {"gamma": 0.6, "num_responses": 2, "seed": 0}
    assert out["runs"]["sft_skd_gamma1p0"] == {"sft": "skd_gamma1p0", "label": "SFT on SKD (gamma 1.0)"}
    assert out["runs"]["sft_skd_f_gamma0p6"]["sft"] == "skd_gamma0p6.filtered"
    # a KD run from a swept SFT run follows it, value by value
    assert out["runs"]["sft_skd_kd_gamma0p6"] == {"kd": "rkl", "from": "sft_skd_gamma0p6", "label": "KD (gamma 0.6)"}
    assert "sft_skd" not in out["runs"] and "skd" not in out["synth"]
    assert out["tables"]["main"]["rows"] == [
        "base",
        "sft_skd_gamma0p6",
        "sft_skd_gamma1p0",
        "sft_skd_kd_gamma0p6",
        "sft_skd_kd_gamma1p0",
        "sft_motab_ep1",
        "sft_motab_ep3",
    ]


def test_any_numeric_parameter_sweeps_and_two_sweeps_give_their_product():
    cfg = study(
        synth={"motab": {"theta": [0.5, 2], "epsilon0": [0.1, 0.2], "seed": 0}},
        runs={"r": {"sft": "motab"}},
        tables={"t": {"rows": ["r"]}},
    )
    out = expand_study("s", cfg)
    assert sorted(out["synth"]) == [
        "motab_epsilon00p1_theta0p5",
        "motab_epsilon00p1_theta2",
        "motab_epsilon00p2_theta0p5",
        "motab_epsilon00p2_theta2",
    ]
    assert out["runs"]["r_epsilon00p2_theta2"]["label"] == "r (epsilon0 0.2, theta 2)"
    assert len(out["tables"]["t"]["rows"]) == 4


def test_eval_epochs_add_one_run_per_epoch_reading_the_sft_runs_checkpoint():
    out = expand_study("s", study())
    assert out["runs"]["sft_motab"] == {"sft": "motab", "label": "SFT on MOTAB"}  # the list is gone
    assert out["runs"]["sft_motab_ep3"] == {
        "sft": "motab",
        "epoch": 3,
        "epoch_of": "sft_motab",
        "label": "SFT on MOTAB (epoch 3)",
    }


def test_swept_run_with_eval_epochs_gets_epochs_per_value():
    cfg = study()
    cfg["runs"]["sft_skd"]["eval_epochs"] = [2]
    out = expand_study("s", cfg)
    assert out["runs"]["sft_skd_gamma0p6_ep2"]["epoch_of"] == "sft_skd_gamma0p6"
    assert "sft_skd_gamma0p6_ep2" in out["tables"]["main"]["rows"]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"synth": {"skd": {"gamma": ["a", 0.7]}}},
            "studies.s.synth.skd.gamma: a sweep is a non-empty list of numbers",
        ),
        ({"synth": {"skd": {"gamma": [0.7, 0.7]}}}, "studies.s.synth.skd.gamma: a swept value appears twice"),
        ({"synth": {"sdk": {"gamma": 0.7}}}, "studies.s.synth.sdk: synthesis entry 'sdk'"),
        (
            {"sft": SFT | {"save_strategy": "no"}},
            "studies.s.runs.sft_motab.eval_epochs: needs studies.s.sft.save_strategy",
        ),
        ({"sft": SFT | {"num_train_epochs": 2}}, "between 1 and num_train_epochs (2), found [1, 3]"),
    ],
)
def test_bad_sweeps_and_epochs_name_the_config_key(change, message):
    with pytest.raises(
        SweepError,
        match=message.replace("(", r"\(")
        .replace(")", r"\)")
        .replace("[", r"\[")
        .replace("]", r"\]")
        .replace(".", r"\."),
    ):
        expand_study("s", study(**change))


def test_names_read_back_and_values_become_name_tokens():
    assert [synth_algorithm(n) for n in ("skd", "skd_7b", "skd_7b_gamma0p6", "teacher_only_x", "motab")] == [
        "skd",
        "skd",
        "skd",
        "teacher_only",
        "motab",
    ]
    assert [value_token(v) for v in (0.6, 1.0, 2, 1e-06, -0.5)] == ["0p6", "1p0", "2", "1em06", "m0p5"]


def test_the_motab_study_plans_the_released_grid():
    """eval_all.sh: per student (Qwen3-4B, Qwen2-7B), SKD at gamma 0.6..1.0 and MOTAB at epochs 1..5."""
    config = compose(workflow_config(REPO), REPO)
    motab = config["studies"]["motab"]
    rows = motab["tables"]["main"]["rows"]
    for student in ("", "_7b"):
        assert [r for r in rows if r.startswith(f"sft_skd{student}_gamma")] == [
            f"sft_skd{student}_gamma{g}" for g in ("0p6", "0p7", "0p8", "0p9", "1p0")
        ]
        assert [r for r in rows if r.startswith(f"sft_motab{student}_ep")] == [
            f"sft_motab{student}_ep{e}" for e in range(1, 6)
        ]
    assert motab["synth"]["skd_7b_gamma0p8"]["student"] == "Qwen2-7B" and motab["runs"]["sft_skd_7b_gamma0p8"] == {
        "sft": "skd_7b_gamma0p8",
        "from": "Qwen2-7B",
        "label": "Qwen2-7B: SFT on SKD (gamma 0.8)",
    }
    toy = config["studies"]["toy"]
    assert [r for r in toy["tables"]["main"]["rows"] if r.startswith(("sft_skd", "sft_motab"))] == [
        "sft_motab_ep2",
        "sft_motab_ep4",
        "sft_motab_paper",
        "sft_skd_gamma0p9",
        "sft_skd_gamma0p8",
        "sft_skd_paper",
    ]
