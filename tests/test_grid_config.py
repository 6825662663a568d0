"""The paper grid in studies/*.yaml: every table of every study makes a spec the table builder accepts,
so a typo in a published reference number or a row name stops here, not after a cluster run."""

from pathlib import Path

import pytest

from motab.plan import compose, workflow_config
from motab.plan.tables import table_spec
from motab.tables.build import _published_mean, parse_spec

REPO = Path(__file__).resolve().parents[1]
CONFIG = compose(workflow_config(REPO), REPO)  # the published numbers come from studies/*.reference.tsv
TABLES = [(study, table) for study, cfg in CONFIG["studies"].items() for table in cfg["tables"]]


@pytest.mark.parametrize("study, table", TABLES, ids=[f"{s}.{t}" for s, t in TABLES])
def test_every_table_makes_a_valid_spec(study, table):
    spec = parse_spec(table_spec(study, CONFIG["studies"][study], CONFIG["benchmarks"], table))
    for values in (spec.reference or {}).get("rows", {}).values():
        assert all(_published_mean(v) is not None for v in values.values())


def test_published_numbers_stand_beside_the_paper_rows():
    pwopsd = CONFIG["studies"]["pwopsd"]["tables"]
    assert len(pwopsd["qwen3_4b"]["reference"]["rows"]) == 5 and len(pwopsd["dsr1_llama_8b"]["reference"]["rows"]) == 4
    assert pwopsd["qwen3_4b"]["reference"]["rows"]["qwen3_4b_pwopsd_moderate"]["avg"] == "70.66"
    cot = CONFIG["studies"]["cotfilter"]["tables"]
    assert cot["accuracy"]["reference"]["rows"]["filtered"]["gsm8k"] == 0.5739
    assert {spec["metric"] for spec in cot.values()} == {"avg@1", "mean_words", "critic"}
