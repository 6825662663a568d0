"""The report's table | chart switch in a real headless Chromium, without running the toy study: a
two-table workflow whose report() labels are the ones rules/tables.smk and rules/report.smk give
a table's HTML page and its chart, built into a report by Snakemake itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def rule_labels(path: Path, output: str) -> str:
    """The labels={...} of the report() around `output` in a rules file, for table main of study toy."""
    text = path.read_text()
    block = text[text.index(output) :]
    labels = re.search(r"labels=(\{.*\})", block).group(1)  # to the last brace of its line
    return labels.replace("{table}", "main").replace("{study}", "toy")


def mini_workflow(folder: Path) -> None:
    from motab.report.chart import bar_chart

    spec = {
        "title": "t",
        "metric": "avg@4",
        "scale": 100,
        "decimals": 2,
        "rows": [{"run": "s", "label": "Student"}, {"run": "t", "label": "Teacher"}],
        "benchmarks": [{"name": "b", "label": "B"}],
    }
    evals = []
    for run, value in (("s", 0.3), ("t", 0.8)):
        path = folder / f"{run}.json"
        path.write_text(f'{{"run": "{run}", "benchmark": "b", "seed": 0, "metrics": {{"avg@4": {value}}}}}')
        evals.append(str(path))
    bar_chart(spec, evals, folder / "chart.png")
    table = rule_labels(REPO / "rules" / "tables.smk", '"results/{study}/tables/{table}.html"')
    chart = rule_labels(REPO / "rules" / "report.smk", '"results/{study}/report/{table}.png"')
    (folder / "Snakefile").write_text(
        f"""
rule all:
    input: "out/main.html", "out/main.png", "out/cost.html"

rule table:
    output: report("out/main.html", category="Tables", subcategory="toy", labels={table})
    shell: "echo '<html><body><p>Teacher 80.00</p></body></html>' > {{output}}"

rule chart:
    output: report("out/main.png", category="Tables", subcategory="toy", labels={chart})
    shell: "cp chart.png {{output}}"

rule cost:
    output: report("out/cost.html", category="Cost", subcategory="toy", labels={{"figure": "cost per stage"}})
    shell: "echo '<html><body>cost</body></html>' > {{output}}"
"""
    )


@pytest.mark.slow
def test_tables_switch_to_the_chart_in_headless_chromium(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from report_screenshot import find_browser, screenshot

    if find_browser() is None:
        if os.environ.get("CI"):  # .ci/run installs Chromium
            pytest.fail("no headless browser (chromium) in CI: .ci/run should have installed it")
        pytest.skip("no headless browser (chromium) on this machine: apt-get install chromium")
    mini_workflow(tmp_path)
    for args in (["-c1"], ["--report", "report.html"]):
        proc = subprocess.run([SNAKEMAKE, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    state = screenshot(tmp_path / "report.html", tmp_path / "shot.png", ["Tables", "chart", "view:main"])
    charts = [img for img in state["images"] if img["src"].startswith("data:image/png") and img["w"] >= 300]
    assert charts, state["images"]
    state = screenshot(tmp_path / "report.html", tmp_path / "table.png", ["Tables", "table", "view:main"])
    assert not [img for img in state["images"] if img["src"].startswith("data:image/png") and img["w"] >= 300]
