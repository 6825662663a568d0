"""kd blocks of config -> each KD run's (teacher, prompt dataset, prompts per step), and the start-up check
of what the schema cannot say (names that must exist, keys that exclude each other)."""

from __future__ import annotations

from motab.training.kd.blocks import kd_config_errors, kd_sources

BASE = {
    "engine": "builtin",
    "loss": "rkl_onpolicy",
    "steps": 2,
    "samples_per_prompt": 2,
    "max_new_tokens": 8,
    "temperature": 1.0,
    "lr": 1e-4,
    "seed": 0,
}


def study(**kd) -> dict:
    return {
        "teacher": "big",
        "student": "small",
        "train_data": "limo",
        "kd": kd,
        "runs": {name: {"kd": name} for name in kd},
    }


def config(**kd) -> dict:
    return {
        "models": {"big": {}, "small": {}, "other": {}},
        "datasets": {"limo": {}, "deepmath": {}},
        "studies": {"s": study(**kd)},
    }


def test_sources_default_to_the_study_teacher_and_train_data():
    s = study(plain={**BASE, "prompts_per_step": 4}, own={**BASE, "prompts_per_step": 4, "prompts": "deepmath"})
    assert kd_sources(s, {"kd": "plain"}) == [("big", "limo", None)]
    assert kd_sources(s, {"kd": "own", "teacher": "other"}) == [("other", "deepmath", None)]


def test_teachers_give_one_source_each_in_order():
    teachers = [
        {"model": "big", "prompts": "deepmath", "prompts_per_step": 8},
        {"model": "self", "prompts": "limo", "prompts_per_step": 2},
    ]
    assert kd_sources(study(multi={**BASE, "teachers": teachers}), {"kd": "multi"}) == [
        ("big", "deepmath", 8),
        ("self", "limo", 2),
    ]
    assert kd_config_errors(config(multi={**BASE, "teachers": teachers})) == []


def test_errors_name_the_key_and_what_was_expected():
    teachers = [{"model": "huge", "prompts": "gsm", "prompts_per_step": 8}]
    cfg = config(
        multi={**BASE, "teachers": teachers, "prompts_per_step": 4, "prompts": "limo"},
        flow={"engine": "kdflow", "loss": "rkl", "teachers": [{**teachers[0], "model": "big", "prompts": "limo"}]},
        nobatch=dict(BASE),
        badprompts={**BASE, "prompts_per_step": 4, "prompts": "deepmat"},
    )
    cfg["studies"]["s"]["runs"]["multi"]["teacher"] = "other"
    errors = kd_config_errors(cfg)
    expected = [
        "studies.s.kd.multi.prompts_per_step: not used with teachers",
        "studies.s.kd.multi.prompts: not used with teachers",
        "studies.s.kd.multi.teachers[0].model: 'huge' is not a model",
        "studies.s.kd.multi.teachers[0].prompts: 'gsm' is not a dataset",
        "studies.s.kd.flow.teachers: several teachers need engine builtin",
        "studies.s.kd.nobatch: prompts_per_step is required",
        "studies.s.kd.badprompts.prompts: 'deepmat' is not a dataset",
        "studies.s.runs.multi.teacher: kd 'multi' names its teachers",
    ]
    for message in expected:
        assert any(e.startswith(message) for e in errors), (message, errors)
    assert len(errors) == len(expected)
