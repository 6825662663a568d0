"""Cost per stage from the jobs' benchmark files, and a benchmark file on every GPU rule."""

from __future__ import annotations

import re
from pathlib import Path

from motab.report.cost import cost_rows, main

REPO = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path: Path, seconds: float, rss: float, cpu: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t95.0\t{cpu}\n")


def test_stage_hours_from_snakemake_benchmark_files(tmp_path):
    logs = tmp_path / "logs" / "toy"
    _bench(logs / "synth" / "motab.benchmark.tsv", 3600, 500.5, 7200)
    _bench(logs / "synth" / "skd.benchmark.tsv", 1800, 800.0, 1800)
    _bench(logs / "eval" / "base" / "toy_test" / "seed0.generate.benchmark.tsv", 360, 300.0, 360)
    rows = {row["stage"]: row for row in cost_rows(logs, {"synth": 8})}
    assert rows["synth"] == {"stage": "synth", "jobs": 2, "wall_hours": 1.5, "cpu_hours": 2.5, "gpu_hours": 12.0,
                             "peak_rss_mb": 800.0}
    assert rows["eval"]["gpu_hours"] == 0.0 and rows["eval"]["cpu_hours"] == 0.1
    assert rows["all"]["jobs"] == 3 and rows["all"]["wall_hours"] == 1.6


def test_cost_cli_writes_csv_and_markdown(tmp_path):
    _bench(tmp_path / "logs" / "toy" / "sft" / "run.benchmark.tsv", 720, 100, 1440)
    assert main(["--study", "toy", "--logs", str(tmp_path / "logs"), "--csv", str(tmp_path / "c.csv"),
                 "--md", str(tmp_path / "c.md")]) == 0
    assert (tmp_path / "c.csv").read_text().splitlines()[1] == "sft,1,0.2,0.4,0.0,100.0"
    assert "| sft | 1 | 0.2 | 0.4 | 0.0 | 100.0 |" in (tmp_path / "c.md").read_text()


def test_every_gpu_rule_writes_a_benchmark_file():
    texts = {path.name: path.read_text() for path in (REPO / "rules").glob("*.smk")}
    for rule, smk in (("synth", "synth.smk"), ("sft", "sft.smk"), ("kd", "kd.smk"), ("eval_generate", "eval.smk"),
                      ("eval_evalscope", "eval.smk"), ("eval_critic", "eval.smk")):
        body = re.search(rf"^rule {rule}:\n((?:    .*\n|\n)*)", texts[smk], re.M).group(1)
        assert "    benchmark:\n" in body, rule
    assert '"logs/{study}/eval/{run}/generate.benchmark.tsv"' in texts["eval.smk"]  # one eval job per run
