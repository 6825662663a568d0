"""The CPU rehearsal of the paper studies (studies/variants/rehearse.yaml, motab/plan/rehearsal.py):
each study keeps its whole plan apart from the declared substitutions, and every table says so."""

from __future__ import annotations

import copy
import html
import json

import pytest
import yaml
from dryrun import REPO

from motab.plan import compose, workflow_config
from motab.plan.rehearsal import RehearsalError, rehearse
from motab.tables.build import build_tables

VARIANT = "studies/variants/rehearse.yaml"
PAPER = ("motab", "pwopsd", "cotfilter", "opd")


@pytest.fixture(scope="module")
def real() -> dict:
    return compose(workflow_config(REPO), REPO)


@pytest.fixture(scope="module")
def rehearsed() -> dict:
    return compose(workflow_config(REPO, VARIANT), REPO)


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load((REPO / VARIANT).read_text())["rehearsal"]


def leaves(node, path=()):
    """{path: value} of every leaf of nested mappings (lists are leaves: a sweep is one value)."""
    if isinstance(node, dict) and node:
        return {p: v for key, value in node.items() for p, v in leaves(value, (*path, key)).items()}
    return {path: node}


def _get(node, path):
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def allowed(name: str, path: tuple, old, new, spec: dict) -> bool:
    """True when a changed leaf of a study is one of the substitutions the variant declares."""
    key, block = path[-1], path[0]
    if new is not None and _get(spec.get("set", {}).get(name, {}), path) == new:
        return True
    if block == "resources" or path[:1] == ("server",):
        return True
    if key in ("teacher", "student", "model", "from"):
        return spec["models"].get(old) == new
    if block == "tables":
        return key in ("title", "note", "metric")
    if new is None:
        return key in spec["drop"].get(block, [])
    cap = spec["caps"].get(block, {}).get(key)
    return cap is not None and new == cap < old


@pytest.mark.parametrize("name", PAPER)
def test_a_rehearsed_study_differs_from_the_real_one_only_by_declared_substitutions(name, real, rehearsed, spec):
    before, after = leaves(real["studies"][name]), leaves(rehearsed["studies"][name])
    changed = {p: (before.get(p), after.get(p)) for p in set(before) | set(after) if before.get(p) != after.get(p)}
    # the KDFlow blocks are replaced as a whole; every other change is a declared one, leaf by leaf
    kdflow = {b for b, cfg in real["studies"][name].get("kd", {}).items() if cfg.get("engine") == "kdflow"}
    undeclared = {
        p: v for p, v in changed.items() if not (p[:2] in {("kd", b) for b in kdflow} or allowed(name, p, *v, spec))
    }
    assert not undeclared, undeclared
    # what makes it the same study: runs (sweeps, epochs, grids written out), modes, engines, references
    study, paper = rehearsed["studies"][name], real["studies"][name]
    assert sorted(study["runs"]) == sorted(paper["runs"])
    assert study["eval"].get("engine") == paper["eval"].get("engine")
    assert study["eval"]["benchmarks"] == paper["eval"]["benchmarks"]
    for table, cfg in paper["tables"].items():
        assert study["tables"][table]["rows"] == cfg["rows"]
        assert study["tables"][table].get("reference") == cfg.get("reference")


def test_motab_runs_released_mode_and_evalscope_on_toy_models_without_gpus(rehearsed):
    study = rehearsed["studies"]["motab"]
    assert (study["teacher"], study["student"], study["server"]) == ("toy-teacher", "toy-student", "embedded")
    assert {s.get("compat") for s in study["synth"].values()} == {"released"}
    assert study["synth"]["teacher_only"]["stepwise"] is True
    assert sorted(n for n in study["synth"] if n.startswith("skd_gamma")) == [
        f"skd_gamma{g}" for g in ("0p6", "0p7", "0p8", "0p9", "1p0")
    ]
    assert study["runs"]["sft_motab_7b"]["from"] == "toy-student"
    assert study["runs"]["sft_motab_ep5"]["epoch"] == 5 and study["sft"]["num_train_epochs"] == 6
    assert study["eval"]["engine"] == "evalscope" and study["eval"]["per_benchmark"]["math500"]["n"] == 1
    assert not {"deepspeed", "flash_attn", "enable_liger_kernel", "bf16"} & set(study["sft"])
    assert study["kd"]["kdflow_rkl"]["engine"] == "builtin" and study["kd"]["rkl"]["teacher_server"] is True
    assert all(r.get("gpus", 0) == 0 for r in study["resources"].values())
    for name in ("math500", "gpqa_diamond", "limo"):
        section = "datasets" if name == "limo" else "benchmarks"
        assert rehearsed[section][name]["source"] == "toy", name
    assert rehearsed["benchmarks"]["gpqa_diamond"]["label"] == "GPQA-Diamond"


def test_every_table_is_titled_and_noted_as_a_rehearsal_naming_each_substitution(rehearsed):
    note = rehearsed["studies"]["motab"]["tables"]["main"]["note"]
    assert rehearsed["studies"]["motab"]["tables"]["main"]["title"].startswith("REHEARSAL")
    for words in (
        "Qwen3-32B -> toy-teacher",
        "Qwen2-7B -> toy-student",
        "server: sglang -> embedded",
        "deepspeed",
        "flash_attn",
        "KDFlow (kdflow_akl, kdflow_dskd, kdflow_rkl) -> the built-in KD trainer",
        "GPUs per job: 4/8 -> 0 (CPU)",
        "eval n 8 -> 2",
        "synth max_total_tokens 32768 -> 64",
        "data limo -> toy problems",
        "benchmarks math500, aime24, aime25, amc, gpqa_diamond -> the toy's 20 held-out problems each",
        "EvalScope aime24, aime25, amc, gpqa_diamond, math_500 -> its general_qa adapter",
    ):
        assert words in note, (words, note)
    for name in PAPER:
        for table in rehearsed["studies"][name]["tables"].values():
            assert table["title"].startswith("REHEARSAL") and table["note"].startswith("Rehearsal on CPU")


def test_a_study_on_the_native_engine_names_no_evalscope_and_each_of_its_datasets(rehearsed):
    note = rehearsed["studies"]["opd"]["tables"]["main"]["note"]
    assert "data deepmath, openthoughts3 -> toy problems" in note and "EvalScope" not in note
    assert rehearsed["datasets"]["deepmath"]["source"] == "toy"


def test_cotfilter_keeps_rows_the_toy_writes_and_says_so(rehearsed, real):
    assert real["studies"]["cotfilter"]["filter"]["mode"] == "seed"
    assert rehearsed["studies"]["cotfilter"]["filter"]["mode"] == "ours"
    assert "filter.mode seed -> ours" in rehearsed["studies"]["cotfilter"]["tables"]["accuracy"]["note"]


def test_a_capped_eval_n_carries_the_tables_avg_at_n(rehearsed, real):
    assert real["studies"]["pwopsd"]["tables"]["qwen3_4b"]["metric"] == "avg@12"
    assert rehearsed["studies"]["pwopsd"]["tables"]["qwen3_4b"]["metric"] == "avg@2"
    assert rehearsed["studies"]["cotfilter"]["tables"]["accuracy"]["metric"] == "avg@1"  # n 1: not capped
    assert rehearsed["studies"]["pwopsd"]["runs"]["olmo3_7b_think_opsd"]["from"] == "toy-student"


def test_without_a_rehearsal_block_nothing_changes(real):
    config = workflow_config(REPO)
    assert rehearse(config) == config
    assert "note" not in real["studies"]["motab"]["tables"]["main"]


def test_a_bad_rehearsal_block_is_one_line_naming_its_key():
    config = workflow_config(REPO, VARIANT)
    for change, message in (
        ({"studies": ["nope"]}, r"rehearsal.studies: \['nope'\] are not studies"),
        ({"models": {"Qwen3-4B": "Qwen3-8B"}}, r"rehearsal.models.Qwen3-4B: 'Qwen3-8B' is not a toy model"),
        ({"dataset": "limo"}, r"rehearsal.dataset: 'limo' is not a toy dataset"),
        ({"kdflow": None}, r"rehearsal.kdflow: needed for the KDFlow kd blocks"),
        ({"studies": "motab"}, r"rehearsal.studies: expected a list, found 'motab'"),
    ):
        bad = copy.deepcopy(config)
        bad["rehearsal"].update(change)
        with pytest.raises(RehearsalError, match=message):
            rehearse(bad)


def test_a_bad_rehearsal_block_stops_the_plan_with_its_line(tmp_path):
    """Through compose, as the Snakefile sees it: a ComposeError (one line, no traceback)."""
    from motab.plan import ComposeError

    config = workflow_config(REPO, VARIANT)
    config["rehearsal"]["studies"] = ["motab", "nope"]
    with pytest.raises(ComposeError, match=r"^rehearsal.studies: \['nope'\] are not studies"):
        compose(config, REPO)


def test_the_note_is_printed_under_every_form_of_the_table(tmp_path):
    ev = tmp_path / "e.json"
    ev.write_text(json.dumps({"run": "a", "benchmark": "b", "seed": 0, "metrics": {"avg@2": 0.5}}))
    spec = {
        "title": "REHEARSAL: T",
        "metric": "avg@2",
        "scale": 100,
        "decimals": 2,
        "rows": [{"run": "a", "label": "A"}],
        "benchmarks": [{"name": "b", "label": "B"}],
        "note": "Rehearsal on CPU: models: Qwen3-32B -> toy-teacher.",
    }
    out = build_tables(spec, [ev])
    for form in ("md", "tex", "html", "csv"):
        assert "Qwen3-32B -> toy-teacher" in html.unescape(out[form]), form
    assert out["md"].startswith("## REHEARSAL: T")
