"""The planning module (motab/plan/): run kinds, the `from` chain, training data, KD sources, targets,
and the composition of config.yaml + studies/*.yaml (defaults, run grids, published numbers), down to
Snakemake's key-by-key merge that keeps --configfile/--config overrides on top of the study files."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from dryrun import REPO, planned

from motab import plan
from motab.plan import ComposeError, PlanError, Study, compose, workflow_config
from motab.plan.compose import expand_grid, read_references

CATALOGUE = {
    "models": {
        "toy-t": {"source": "toy"},
        "toy-s": {"source": "toy"},
        "big": {"source": "hub", "path": "org/big"},
        "second": {"source": "hub", "path": "org/second", "revision": "abc123"},
    },
    "datasets": {"train": {"source": "toy"}, "other": {"source": "toy"}},
    "benchmarks": {"b1": {"source": "toy"}, "b2": {"source": "toy"}},
}


def study(**overrides) -> Study:
    cfg = {
        "teacher": "toy-t",
        "student": "toy-s",
        "train_data": "train",
        "synth": {"teacher_only": {}, "skd_7b": {"student": "second"}, "motab": {}},
        "kd": {
            "rkl": {"seed": 0},
            "multi": {
                "teachers": [
                    {"model": "toy-t", "prompts": "train", "prompts_per_step": 4},
                    {"model": "self", "prompts": "other", "prompts_per_step": 2},
                ]
            },
        },
        "sft": {"seed": 0},
        "runs": {
            "base": {"model": "toy-s"},
            "hub": {"model": "second"},
            "sft": {"sft": "motab.filtered", "label": "SFT"},
            "sft_own": {"sft": "train"},
            "sft_7b": {"sft": "skd_7b", "from": "second"},
            "sft_ep2": {"sft": "motab.filtered", "epoch": 2, "epoch_of": "sft"},
            "kd": {"kd": "rkl", "from": "sft"},
            "kd_base": {"kd": "rkl"},
            "kd_7b": {"kd": "rkl", "from": "sft_7b"},
            "kd_multi": {"kd": "multi", "from": "big"},
        },
        "eval": {"benchmarks": ["b1", "b2"], "seeds": [0, 1]},
        "tables": {
            "main": {"metric": "avg@4", "rows": ["base", "sft_ep2", "kd", "kd_7b"]},
            "judge": {"metric": "critic", "rows": ["kd"]},
        },
    }
    cfg.update(overrides)
    return Study.of(CATALOGUE | {"studies": {"s": cfg}}, "s")


def test_each_run_has_one_kind_and_its_weights_live_where_its_kind_says():
    s = study()
    assert {name: run.kind for name, run in s.runs.items()} == {
        "base": "model",
        "hub": "model",
        "sft": "sft",
        "sft_own": "sft",
        "sft_7b": "sft",
        "sft_ep2": "epoch",
        "kd": "kd",
        "kd_base": "kd",
        "kd_7b": "kd",
        "kd_multi": "kd",
    }
    assert [s.checkpoint_location(r) for r in ("base", "hub", "sft", "sft_ep2", "kd")] == [
        "results/s/models/toy-s",
        "org/second",
        "results/s/ckpt/sft/sft",
        "results/s/ckpt/sft/sft/epoch2",
        "results/s/ckpt/kd/kd",
    ]
    # a hub model is read by the job itself; an epoch checkpoint waits for its SFT run's folder
    assert s.checkpoint_inputs("hub") == [] and s.checkpoint_inputs("sft_ep2") == ["results/s/ckpt/sft/sft"]
    assert s.run("sft").label == "SFT" and s.run("kd").label == "kd" and s.run("kd").trains
    assert not s.run("sft_ep2").trains and s.run("kd").base == "kd" and s.run("kd").train_seed is None


def test_the_from_chain_gives_each_trained_run_its_start_and_architecture():
    s = study()
    assert s.start_of("kd_base") == "toy-s" and s.start_location("kd_base") == "results/s/models/toy-s"
    assert s.start_location("kd") == "results/s/ckpt/sft/sft" and s.start_inputs("kd") == ["results/s/ckpt/sft/sft"]
    assert s.start_location("kd_multi") == "org/big" and s.start_inputs("kd_multi") == []
    # a second student: KD from its SFT run serves the second student's architecture
    assert s.run_model_name("kd_7b") == "second" and s.run_model_name("kd") == "toy-s"
    assert s.run_model_revision("hub") == "abc123" and s.run_model_revision("kd") is None


def test_training_data_follows_from_to_the_synthesis_file_or_the_train_set():
    s = study()
    assert s.synth_method_of("sft") == "motab.filtered" and s.synth_method_of("kd") == "motab.filtered"
    assert s.synth_method_of("kd_7b") == "skd_7b" and s.synth_method_of("kd_base") is None
    assert s.sft_on_train_data("sft_own") and s.sft_data_folder("sft_own") == plan.TRAIN_DATA_SFT
    assert s.synth_method_of("sft_own") is None and s.sft_data_folder("sft") == "motab.filtered"
    bad = study(runs={"x": {"sft": "other"}})
    with pytest.raises(
        PlanError, match=r"studies\.s\.runs\.x\.sft: 'other' is a dataset but not the study's train_data"
    ):
        bad.sft_data_folder("x")


def test_drafting_methods_start_the_student_too_and_agree_with_the_synthesis_command():
    from motab.synthesis.run import STUDENT_METHODS

    s = study()
    assert s.synth_models("teacher_only") == ["toy-t"] and s.synth_models("motab") == ["toy-t", "toy-s"]
    assert s.synth_models("skd_7b") == ["toy-t", "second"]  # the entry's own drafting student
    assert frozenset(STUDENT_METHODS) == plan.STUDENT_METHODS


def test_kd_sources_and_teachers():
    s = study()
    assert s.kd_sources("kd") == [("toy-t", "train", None)]
    assert s.kd_sources("kd_multi") == [("toy-t", "train", 4), ("self", "other", 2)]
    assert s.teacher_location("self") == "self" and s.teacher_location("toy-t") == "results/s/models/toy-t"


def test_training_seeds_replicate_runs_and_tables_read_every_replica():
    expanded = compose(CATALOGUE | {"studies": {"s": dict(study().cfg, train_seeds=[3, 1])}}, REPO)
    s = Study.of(expanded, "s")
    assert s.run("kd_ts1").train_seed == 1 and s.run("kd_ts1").base == "kd" and s.start_of("kd_ts1") == "sft_ts1"
    assert s.kd_cfg("kd")["seed"] == 3 and s.kd_cfg("kd_ts1")["seed"] == 1 and s.sft_cfg("sft_ts1")["seed"] == 1
    assert s.row_runs("kd") == ["kd", "kd_ts1"] and s.row_runs("base") == ["base"]
    assert plan.table_evals(s, "judge") == [
        f"results/s/eval/{run}/{b}/seed{e}.critic.json"
        for run in ("kd", "kd_ts1")
        for b in ("b1", "b2")
        for e in (0, 1)
    ]


def test_targets_of_a_study():
    s = study()
    assert plan.table_evals(s, "main")[:3] == [
        "results/s/eval/base/b1/seed0.json",
        "results/s/eval/base/b1/seed1.json",
        "results/s/eval/base/b2/seed0.json",
    ]
    assert len(plan.table_evals(s, "main")) == 4 * 2 * 2
    assert plan.table_teacher_shares(s, "main") == {
        "sft_ep2": "results/s/synth/motab.filtered.stats.json",
        "kd": "results/s/synth/motab.filtered.stats.json",
        "kd_7b": "results/s/synth/skd_7b.stats.json",
    }
    # an epoch row's curve is its SFT run's; base models have none
    assert plan.trained_table_runs(s) == ["kd", "sft", "kd_7b"]
    config = CATALOGUE | {"select": ["s"], "studies": {"s": s.cfg}}
    assert plan.final_outputs(config) == [
        "results/s/synth/motab.filtered.card.json",  # a data card per dataset a table row trained on
        "results/s/synth/skd_7b.card.json",
        "results/s/tables/judge.md",
        "results/s/tables/judge.csv",
        "results/s/tables/judge.tex",
        "results/s/report/judge.png",
        "results/s/tables/main.md",
        "results/s/tables/main.csv",
        "results/s/tables/main.tex",
        "results/s/report/main.png",
        "results/s/report/training_curves.png",
        "results/s/report/cost.html",
        # the checkpoints the tables evaluate: targets, so a deleted one is rebuilt (test_killed_forcerun)
        "results/s/ckpt/kd/kd",
        "results/s/ckpt/kd/kd_7b",
        "results/s/ckpt/sft/sft",
        "results/s/models/toy-s",
    ]


def test_the_planning_module_imports_no_torch():
    code = (
        "import sys, motab.plan; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_rules_reach_the_package_only_through_motab_plan():
    imports = re.compile(r"^\s*(?:from\s+(motab[\w.]*)\s+import|import\s+(motab[\w.]*))", re.MULTILINE)
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = path.read_text(encoding="utf-8")
        assert "spec_from_file_location" not in text, path
        modules = {a or b for a, b in imports.findall(text)}
        assert modules <= {"motab", "motab.plan"}, (path.name, modules)
        assert "from motab import" not in text or "from motab import plan" in text, path


# --- composition: defaults, run grid, reference tables --------------------------------------


def test_a_studys_resources_default_comes_from_defaults_and_its_own_keys_win():
    config = {
        "defaults": {"resources": {"gpus": 0, "cpus_per_task": 2, "mem_mb": 8000, "runtime": 60}},
        "studies": {"a": {"runs": {}}, "b": {"runs": {}, "resources": {"default": {"runtime": 5}, "kd": {"gpus": 8}}}},
    }
    out = compose(config, REPO)
    assert out["studies"]["a"]["resources"] == {
        "default": {"gpus": 0, "cpus_per_task": 2, "mem_mb": 8000, "runtime": 60}
    }
    assert out["studies"]["b"]["resources"] == {
        "default": {"gpus": 0, "cpus_per_task": 2, "mem_mb": 8000, "runtime": 5},
        "kd": {"gpus": 8},
    }
    assert "defaults" not in config["studies"]["a"] and "resources" not in config["studies"]["a"]  # input unchanged


def test_the_run_grid_writes_students_times_methods():
    grid = {
        "students": {"q": {"model": "Q", "label": "Qwen"}, "d": {"model": "D", "kd_suffix": "_mb2"}},
        "methods": {"opsd": {"kd": "opsd", "label": "OPSD"}, "eopd": {"kd": "eopd"}},
        "kd_run": {"teacher": "self"},
    }
    runs = expand_grid("s", {"run_grid": grid, "runs": {"extra": {"model": "Q"}}})
    assert list(runs) == ["q", "q_opsd", "q_eopd", "d", "d_opsd", "d_eopd", "extra"]
    assert runs["q"] == {"model": "Q", "label": "Qwen"}
    assert runs["d_opsd"] == {"kd": "opsd_mb2", "from": "D", "teacher": "self", "label": "d + OPSD"}
    with pytest.raises(ComposeError, match=r"studies\.s\.runs: \['q'\] are also runs of studies\.s\.run_grid"):
        expand_grid("s", {"run_grid": grid, "runs": {"q": {"model": "Q"}}})
    with pytest.raises(ComposeError, match=r"studies\.s\.run_grid\.methods\.opsd: expected kd"):
        expand_grid("s", {"run_grid": grid | {"methods": {"opsd": {"kdd": "opsd"}}}})


def test_the_pwopsd_grid_is_the_papers_18_runs():
    runs = compose(workflow_config(REPO), REPO)["studies"]["pwopsd"]["runs"]
    assert len(runs) == 18
    assert runs["dsr1_llama_8b_reopold"] == {
        "kd": "reopold_mb2",
        "from": "DeepSeek-R1-Distill-Llama-8B",
        "teacher": "self",
        "label": "DSR1-Llama-8B + REOPOLD",
    }
    assert runs["qwen3_4b_pwopsd_aggressive"]["kd"] == "pwopsd_aggressive"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_reference_cells_read_as_yaml_values(tmp_path):
    tsv = write(
        tmp_path / "s.reference.tsv",
        '# a comment\ntable\trun\tb1\tb2\tavg\nmain\tr1\t95.33±0.08\t0.5512\t"70.27"\nmain\tr2\t0\t\t55\n',
    )
    assert read_references(tsv) == {
        "main": {"r1": {"b1": "95.33±0.08", "b2": 0.5512, "avg": "70.27"}, "r2": {"b1": 0, "avg": 55}}
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("run\ttable\tb1\n", r"s\.reference\.tsv:1: the header must be table, run"),
        ("table\trun\tb1\nmain\tr1\n", r"s\.reference\.tsv:2: 2 cells, the header has 3"),
        ("table\trun\tb1\nmain\tr1\t1\nmain\tr1\t2\n", r"s\.reference\.tsv:3: run 'r1' of table 'main' appears twice"),
        ("table\trun\tb1\nmain\tr1\ttrue\n", r"s\.reference\.tsv:2:b1: expected a number like 95\.33±0\.08"),
    ],
)
def test_a_bad_reference_table_names_file_line_and_field(tmp_path, text, message):
    with pytest.raises(ComposeError, match=message):
        read_references(write(tmp_path / "s.reference.tsv", text))


def test_reference_rows_join_the_tables_label_and_config_rows_win(tmp_path):
    (tmp_path / "studies").mkdir()
    write(tmp_path / "studies" / "s.reference.tsv", "table\trun\tb1\tavg\nmain\tr1\t1.5\t2\nmain\tr2\t3\t\n")
    table = {"rows": ["r1", "r2"], "reference": {"label": "Paper", "rows": {"r2": {"b1": 4}}}}
    out = compose({"studies": {"s": {"runs": {}, "tables": {"main": table}}}}, tmp_path)
    assert out["studies"]["s"]["tables"]["main"]["reference"] == {
        "label": "Paper",
        "rows": {"r1": {"b1": 1.5, "avg": 2}, "r2": {"b1": 4}},
    }
    with pytest.raises(
        ComposeError, match=r"s\.reference\.tsv: table 'main' has no studies\.s\.tables\.main\.reference"
    ):
        compose({"studies": {"s": {"runs": {}, "tables": {"main": {"rows": ["r1"]}}}}}, tmp_path)


def test_the_published_numbers_keep_their_written_form():
    tables = compose(workflow_config(REPO), REPO)["studies"]
    assert tables["pwopsd"]["tables"]["qwen3_4b"]["reference"]["rows"]["qwen3_4b_opsd"] == {
        "math500": "95.33±0.08",
        "aime24": "75.19±0.42",
        "aime25": "66.67±1.27",
        "hmmt25": "43.89±0.73",
        "avg": "70.27",
    }
    assert tables["cotfilter"]["tables"]["critic"]["reference"]["rows"]["baseline"] == {
        "gsm8k": 2.333,
        "math500": 2.28,
        "aime24": 1.067,
    }
    assert tables["opd"]["tables"]["main"]["reference"]["rows"] == {
        "sft_openthoughts3": {"aime24": 55},
        "sft_openthoughts3_opd": {"aime24": 65},
    }


def test_every_study_file_holds_one_study_named_as_the_file(tmp_path):
    assert plan.study_file_errors(REPO) == []
    (tmp_path / "studies").mkdir()
    write(tmp_path / "studies" / "a.yaml", "studies:\n  b: {teacher: x}\n")
    write(tmp_path / "studies" / "c.yaml", "models: {}\n")
    assert plan.study_file_errors(tmp_path) == [
        "studies/a.yaml:1: expected `studies:` holding the one study 'a' (the file's name), found ['b']",
        "studies/c.yaml:1: expected `studies:` holding the one study 'c' (the file's name), found ['models']",
    ]
    files = plan.study_files(REPO)
    assert [f.split("/")[-1] for f in files] == [f"{s}.yaml" for s in ("cotfilter", "motab", "opd", "pwopsd", "toy")]
    for name in files:
        data = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
        assert list(data) == ["studies"] and list(data["studies"]) == [name.split("/")[-1].removesuffix(".yaml")]
    assert "studies" not in yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


# --- Snakemake's merge: the command line wins over the study files ---------------------------


def seeds_of(jobs) -> set[str]:
    return {dict(wildcards)["seed"] for _, wildcards in jobs if "seed" in dict(wildcards)}


def test_configfile_and_config_overrides_beat_the_study_files(tmp_path):
    """Snakemake 9 re-applies --configfile/--config after every `configfile:` of the Snakefile, so an
    override of one study key holds although the study file is loaded after config.yaml, and the
    study's other keys stay (a key-by-key merge, not a replacement of the study)."""
    base = planned(REPO, [])
    assert seeds_of(base) == {"0", "1"}
    override = write(tmp_path / "one_seed.yaml", "studies:\n  toy:\n    eval:\n      seeds: [0]\n")
    by_file = planned(REPO, [override])
    assert by_file == {job for job in base if dict(job[1]).get("seed") != "1"}
    by_config = planned(REPO, [override], config={"studies": {"toy": {"eval": {"seeds": [1]}}}})
    assert seeds_of(by_config) == {"1"} and len(by_config) == len(by_file)  # --config beats --configfile


# --- findings name the file and line of their key --------------------------------------------


def test_a_finding_names_the_file_and_line_its_key_came_from(tmp_path):
    (tmp_path / "studies").mkdir()
    write(tmp_path / "config.yaml", "select: [s]\nmodels:\n  Qwen2-1.5B:\n    source: hub\n    tp: 0\n")
    write(
        tmp_path / "studies" / "s.yaml",
        "studies:\n  s:\n    eval:\n      benchmarks: [a, b]\n      n: zero\n    runs:\n      sft: {sft: skd}\n",
    )
    override = write(tmp_path / "over.yaml", "studies:\n  s:\n    eval:\n      n: -1\n")
    assert (
        plan.locate("models.Qwen2-1.5B.tp: expected >= 1", tmp_path)
        == "config.yaml:5: models.Qwen2-1.5B.tp: expected >= 1"
    )  # a key with a dot in it
    assert plan.locate("studies.s.eval.benchmarks[1]: no benchmark 'b'", tmp_path).startswith("studies/s.yaml:4: ")
    # a run the sweep expansion made: the line of its closest written ancestor (`runs:`)
    assert plan.locate("studies.s.runs.sft_gamma0p6.sft: x", tmp_path).startswith("studies/s.yaml:6: ")
    # the command line wins, so a key an override file sets is reported there
    assert plan.locate("studies.s.eval.n: expected integer", tmp_path).startswith("studies/s.yaml:5: ")
    assert (
        plan.locate("studies.s.eval.n: expected integer", tmp_path, (str(override),))
        == f"{override}:4: studies.s.eval.n: expected integer"
    )
    assert plan.locate("no key here", tmp_path) == "no key here"
