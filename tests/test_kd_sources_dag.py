"""KD prompts from their own dataset (`prompts:`) and several teachers (`teachers:`), as Snakemake plans
them: the plan is the modelled DAG (test_staleness.ToyDag), and changing one teacher's dataset reruns
only that dataset's prompt preparation, the KD stage and what follows it."""

from __future__ import annotations

import copy
import os

import pytest
import yaml
from dryrun import REPO, copy_workflow, make_up_to_date, plan_many, planned
from test_staleness import STUDY, ToyDag, node

from motab.plan import workflow_config

OVERLAY = "kd_sources.yaml"  # tests/configs/kd_sources.yaml: a second toy dataset, two KD recipes
HARD_ONLY = {"studies": {STUDY: {"tables": {"main": {"rows": ["kd_hard_prompts"]}}}}}


def merged(base: dict, overlay: dict) -> dict:
    """Snakemake's merge of config files: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("kd_sources"), with_package=True)
    (workdir / OVERLAY).write_text((REPO / "tests" / "configs" / OVERLAY).read_text())
    (workdir / "hard_only.yaml").write_text(yaml.safe_dump(HARD_ONLY))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(workdir), str(REPO / "tests")]))
    config = merged(workflow_config(workdir), yaml.safe_load((workdir / OVERLAY).read_text()))
    return workdir, env, config


def kd_prompt_jobs(plan: set) -> set[str]:
    return {dict(wildcards)["dataset"] for rule, wildcards in plan if rule == "kd_prompts"}


@pytest.mark.slow
def test_prompts_and_teachers_plan_the_modelled_jobs_then_one_dataset_change_reruns_its_branch(workflow):
    workdir, env, config = workflow
    # from nothing: the plans are the modelled DAGs
    teachers, hard = plan_many(
        workdir,
        [{"configfiles": ["config.yaml", OVERLAY]}, {"configfiles": ["config.yaml", OVERLAY, "hard_only.yaml"]}],
        env,
    )
    assert teachers == set(ToyDag(config).deps)
    assert hard == set(ToyDag(merged(config, HARD_ONLY)).deps)
    # prompts: toy_hard -> only toy_hard's prompts; teachers -> each teacher's dataset
    assert kd_prompt_jobs(hard) == {"toy_hard"} and kd_prompt_jobs(teachers) == {"toy", "toy_hard"}
    assert node("prepare_dataset", dataset="toy_hard", study=STUDY) in hard
    assert node("toy_dataset", dataset="toy_hard", study=STUDY) in teachers

    # a complete study with two teachers; then one change at a time
    make_up_to_date(workdir, [workdir / "config.yaml", workdir / OVERLAY], env)
    harder = {"datasets": {"toy_harder": {**config["datasets"]["toy_hard"], "num_ops": 4}}}
    kd = config["studies"][STUDY]["kd"]["tinker"]
    swapped = copy.deepcopy(kd["teachers"])
    swapped[1]["prompts"] = "toy_harder"
    more = copy.deepcopy(kd["teachers"])
    more[0]["prompts_per_step"] += 1
    changes = {
        "toy_hard's data": {"datasets": {"toy_hard": {"num_ops": 4}}},
        "teacher 2 takes another dataset": {**harder, "studies": {STUDY: {"kd": {"tinker": {"teachers": swapped}}}}},
        "teacher 1's prompts per step": {"studies": {STUDY: {"kd": {"tinker": {"teachers": more}}}}},
    }
    for i, change in enumerate(changes.values()):
        (workdir / f"change{i}.yaml").write_text(yaml.safe_dump(change))
    requests = [
        {"configfiles": ["config.yaml", OVERLAY, *([f"change{i}.yaml"] if i >= 0 else [])]}
        for i in range(-1, len(changes))
    ]  # -1: no change
    plans = plan_many(workdir, requests, env)
    assert plans[0] == set(), "touched study not up to date"
    kd_job = node("kd", run="kd_tinker", study=STUDY)
    expected = {
        "toy_hard's data": ToyDag(config).downstream({node("toy_dataset", dataset="toy_hard", study=STUDY)}),
        "teacher 2 takes another dataset": ToyDag(
            merged(config, changes["teacher 2 takes another dataset"])
        ).downstream({node("toy_dataset", dataset="toy_harder", study=STUDY)}),
        "teacher 1's prompts per step": ToyDag(config).downstream({kd_job}),
    }
    for (name, want), got in zip(expected.items(), plans[1:]):
        assert got == want, (
            f"{name}:\n  scheduled but not expected: {sorted(got - want)}\n"
            f"  expected but not scheduled: {sorted(want - got)}"
        )
        assert kd_job in got and node("kd_prompts", dataset="toy", study=STUDY) not in got, name
    assert kd_prompt_jobs(plans[1]) == {"toy_hard"} and kd_prompt_jobs(plans[2]) == {"toy_harder"}


def test_teachers_with_a_prompts_per_step_stop_the_run_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"studies": {STUDY: {"kd": {"tinker": {"prompts_per_step": 8}}}}}))
    with pytest.raises(Exception, match="studies.toy.kd.tinker.prompts_per_step: not used with teachers"):
        planned(REPO, [REPO / "config.yaml", REPO / "tests" / "configs" / OVERLAY, bad])
