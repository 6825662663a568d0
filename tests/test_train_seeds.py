"""train_seeds: replica runs per training seed, the seed each run trains with, and tables that
aggregate over training seeds (the ± across training seeds, each the mean over eval seeds)."""

from __future__ import annotations

import json

import pytest

from motab.plan.sweeps import SweepError, expand_study, row_runs, training_seed
from motab.plan.tables import table_spec
from motab.tables import build

SFT = {"finetuning_type": "full", "num_train_epochs": 4, "save_strategy": "epoch", "seed": 0}


def study(**overrides) -> dict:
    cfg = {
        "sft": dict(SFT),
        "kd": {"rkl": {"loss": "rkl", "seed": 0}},
        "runs": {
            "base": {"model": "m", "label": "Base"},
            "sft": {"sft": "motab", "eval_epochs": [2], "label": "SFT"},
            "kd": {"kd": "rkl", "from": "sft", "label": "KD"},
            "kd_base": {"kd": "rkl", "from": "base"},
        },
        "eval": {"benchmarks": ["toy"], "seeds": [0, 1]},
        "tables": {"main": {"title": "T", "metric": "avg@4", "rows": ["base", "sft", "kd", "kd_base"]}},
        "train_seeds": [0, 1, 2],
    }
    cfg.update(overrides)
    return cfg


def test_each_training_run_gets_a_replica_per_further_seed_that_follows_its_start():
    runs = expand_study("s", study())["runs"]
    assert "base_ts1" not in runs  # a base model trains nothing
    assert runs["sft_ts1"] == {"sft": "motab", "train_seed": 1, "replica_of": "sft", "label": "SFT (training seed 1)"}
    assert runs["kd_ts2"]["from"] == "sft_ts2"  # KD of seed 2 starts from SFT of seed 2
    assert runs["kd_base_ts1"]["from"] == "base"  # ... and from the shared base model
    assert runs["sft_ep2_ts1"]["epoch_of"] == "sft_ts1"  # an epoch row reads its seed's checkpoint
    assert runs["sft"] == {"sft": "motab", "label": "SFT"}  # the run itself is unchanged (seed 0's files stay)


def test_the_seed_each_run_trains_with():
    cfg = expand_study("s", study(train_seeds=[3, 1]))
    assert training_seed(cfg, "sft", block_seed=0) == 3  # the first training seed
    assert training_seed(cfg, "sft_ts1", block_seed=0) == 1
    assert training_seed(expand_study("s", study(train_seeds=None)), "sft", block_seed=0) == 0  # unset: the block's


def test_row_runs_list_the_replicas_in_train_seeds_order():
    cfg = expand_study("s", study(train_seeds=[0, 5, 2]))
    assert row_runs(cfg, "kd") == ["kd", "kd_ts5", "kd_ts2"]
    assert row_runs(cfg, "base") == ["base"]
    assert row_runs(expand_study("s", study(train_seeds=None)), "kd") == ["kd"]


def test_a_repeated_seed_or_a_taken_name_names_the_key():
    with pytest.raises(SweepError, match=r"studies\.s\.train_seeds: a seed appears twice"):
        expand_study("s", study(train_seeds=[0, 1, 1]))
    cfg = study()
    cfg["runs"]["kd_ts1"] = {"model": "m"}
    with pytest.raises(SweepError, match=r"studies\.s\.runs\.kd_ts1: the name is taken"):
        expand_study("s", cfg)


def _table(tmp_path, values, train_seeds):
    cfg = expand_study("s", study(train_seeds=train_seeds))
    spec = table_spec("s", cfg, {"toy": {"label": "Toy"}}, "main")
    paths = []
    for run, seeds in values.items():
        for seed, value in seeds.items():
            path = tmp_path / f"{run}.{seed}.json"
            path.write_text(json.dumps({"run": run, "benchmark": "toy", "seed": seed, "metrics": {"avg@4": value}}))
            paths.append(path)
    return spec, build.build_tables(spec, paths)


def test_a_table_aggregates_over_training_seeds_and_says_so(tmp_path):
    values = {
        "base": {0: 0.10, 1: 0.20},
        "kd_base": {0: 0.5, 1: 0.5},
        "kd_base_ts1": {0: 0.6, 1: 0.6},
        "kd_base_ts2": {0: 0.7, 1: 0.9},
    }
    for run in ("sft_ep2", "sft_ep2_ts1", "sft_ep2_ts2", "kd", "kd_ts1", "kd_ts2"):
        values[run] = {0: 0.3, 1: 0.3}
    spec, texts = _table(tmp_path, values, [0, 1, 2])
    assert spec["rows"][3] == {
        "run": "kd_base",
        "label": "kd_base",
        "replicas": ["kd_base", "kd_base_ts1", "kd_base_ts2"],
    }
    # kd_base: seed means 50, 60, 80 -> mean of all six evals 63.33, std of the three means 15.28
    assert "| kd_base | 63.33 ± 15.28 |" in texts["md"]
    assert "| Base | 15.00 ± 7.07 |" in texts["md"]  # no replicas: over its eval seeds, as before
    assert "3 training seeds (± across their means, each over 2 eval seeds)" in texts["md"]
    assert "rows that train nothing: 2 seeds (eval seeds)" in texts["md"]
    assert "kd_base,ours,63.33,15.28,3x2" in texts["csv"]


def test_a_missing_replica_is_an_error_that_names_it(tmp_path):
    values = {
        run: {0: 0.5, 1: 0.5}
        for run in ("base", "sft_ep2", "sft_ep2_ts1", "sft_ep2_ts2", "kd", "kd_ts1", "kd_ts2", "kd_base", "kd_base_ts1")
    }
    with pytest.raises(build.TableError, match=r"'kd_base_ts2', 'toy'"):
        _table(tmp_path, values, [0, 1, 2])


def test_without_train_seeds_the_spec_is_unchanged(tmp_path):
    spec = table_spec("s", expand_study("s", study(train_seeds=None)), {"toy": {"label": "Toy"}}, "main")
    assert all("replicas" not in row for row in spec["rows"])


@pytest.mark.slow
def test_adding_training_seeds_to_a_finished_study_trains_only_the_new_seeds(tmp_path):
    """After a complete toy study, `train_seeds: [0, 1]` plans the seed-1 replicas of every SFT and
    KD run (and their evals) plus the tables that now read them: seed 0's checkpoints and evals are
    the existing runs' own and rerun nothing."""
    import os

    from dryrun import REPO, copy_workflow, make_up_to_date, plan_many

    workdir = copy_workflow(tmp_path, with_package=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(workdir), str(REPO / "tests")]))
    make_up_to_date(workdir, [workdir / "config.yaml"], env)
    (workdir / "seeds.yaml").write_text("studies: {toy: {train_seeds: [0, 1]}}\n")
    (plan,) = plan_many(workdir, [{"configfiles": ["config.yaml", "seeds.yaml"]}], env)
    runs = {dict(wildcards).get("run") for _, wildcards in plan} - {None}
    rules = {rule for rule, _ in plan}
    assert runs and all(run.endswith("_ts1") for run in runs), sorted(runs)
    assert {"sft", "kd", "eval_generate", "eval_grade", "table", "table_chart"} <= rules
    assert not rules & {"synth", "toy_model", "reorganize", "prepare"}  # data and base models are shared
    expected = {f"{run}_ts1" for run in ("sft_teacher_only", "sft_motab", "sft_teacher_only_kd_rkl")}
    assert expected <= {dict(w)["run"] for rule, w in plan if rule in ("sft", "kd")}
