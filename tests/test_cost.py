"""Cost per stage from the jobs' benchmark files, and a benchmark file on every GPU rule."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from motab.report.cost import cost_rows, job_gpus, main

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
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
    assert rows["synth"] == {
        "stage": "synth",
        "jobs": 2,
        "wall_hours": 1.5,
        "cpu_hours": 2.5,
        "gpu_hours": 12.0,
        "peak_rss_mb": 800.0,
    }
    assert rows["eval"]["gpu_hours"] == 0.0 and rows["eval"]["cpu_hours"] == 0.1
    assert rows["all"]["jobs"] == 3 and rows["all"]["wall_hours"] == 1.6


def test_cost_cli_writes_csv_and_markdown(tmp_path):
    _bench(tmp_path / "logs" / "toy" / "sft" / "run.benchmark.tsv", 720, 100, 1440)
    assert (
        main(
            [
                "--study",
                "toy",
                "--logs",
                str(tmp_path / "logs"),
                "--csv",
                str(tmp_path / "c.csv"),
                "--md",
                str(tmp_path / "c.md"),
            ]
        )
        == 0
    )
    assert (tmp_path / "c.csv").read_text().splitlines()[1] == "sft,1,0.2,0.4,0.0,100.0"
    assert "| sft | 1 | 0.2 | 0.4 | 0.0 | 100.0 |" in (tmp_path / "c.md").read_text()


def test_each_job_counts_the_gpus_it_asked_for_and_the_same_logs_give_the_same_bytes(tmp_path, capsys):
    """An eval job asks for its run's model tp (the teacher 4, a student 1), a critic job for its
    judge's; the most specific glob wins whatever the key order; the files are byte-stable."""
    logs = tmp_path / "logs" / "s"
    _bench(logs / "eval" / "teacher" / "generate.benchmark.tsv", 3600, 1, 1)
    _bench(logs / "eval" / "student_long_name" / "generate.benchmark.tsv", 3600, 1, 1)
    _bench(logs / "eval" / "student_long_name" / "b" / "seed0.critic.benchmark.tsv", 1800, 1, 1)
    _bench(logs / "sft" / "student_long_name.benchmark.tsv", 7200, 1, 1)
    gpus = {
        "eval/student_long_name/*": 1,
        "eval/teacher/*": 4,
        "eval/teacher/*.critic.benchmark.tsv": 8,
        "eval/student_long_name/*.critic.benchmark.tsv": 8,
        "sft": 2,
    }
    assert job_gpus("eval/student_long_name/b/seed0.critic.benchmark.tsv", "eval", gpus) == 8
    assert job_gpus("eval/student_long_name/b/seed0.critic.benchmark.tsv", "eval", dict(reversed(gpus.items()))) == 8
    assert job_gpus("eval/other/generate.benchmark.tsv", "eval", gpus) == 0
    rows = {row["stage"]: row for row in cost_rows(logs, gpus)}
    assert rows["eval"]["gpu_hours"] == 4 + 1 + 0.5 * 8 and rows["sft"]["gpu_hours"] == 4.0
    for name in ("a", "b"):
        assert (
            main(
                [
                    "--study",
                    "s",
                    "--logs",
                    str(tmp_path / "logs"),
                    "--gpus-json",
                    json.dumps(gpus),
                    "--csv",
                    str(tmp_path / f"{name}.csv"),
                    "--html",
                    str(tmp_path / f"{name}.html"),
                ]
            )
            == 0
        )
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    assert "<td>eval</td><td>3</td><td>2.5</td>" in (tmp_path / "a.html").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--study", "s", "--logs", str(tmp_path / "logs"), "--gpus-json", '{"sft": "two"}'])
    assert "--gpus-json: expected an object of GPU counts" in capsys.readouterr().err


def test_every_job_that_asks_for_gpus_writes_a_benchmark_file_and_each_study_a_cost_table():
    """In the paper studies' SLURM plan every job with gpu > 0 has a benchmark file, and each study
    ends in a cost table whose GPU counts are the ones its jobs ask for."""
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--profile", "profiles/slurm", "all"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = proc.stdout.split("\nrule ")[1:]
    gpu_jobs = [b for b in blocks if re.search(r"\bgpu=[1-9]", b)]
    assert len(gpu_jobs) > 50
    assert all("\n    benchmark: logs/" in b for b in gpu_jobs), [
        b.split("\n")[0] for b in gpu_jobs if "benchmark:" not in b
    ][:5]
    costs = {
        re.search(r"--study (\S+)", b).group(1): json.loads(re.search(r"--gpus-json '(.*?)'", b).group(1))
        for b in blocks
        if b.startswith("cost_table:")
    }
    assert sorted(costs) == ["cotfilter", "motab", "opd", "pwopsd"]
    assert costs["motab"]["eval/teacher/*"] == 4 and costs["motab"]["eval/base_student/*"] == 1
    assert costs["motab"]["sft"] == 8 and costs["cotfilter"]["eval/baseline/*.critic.benchmark.tsv"] == 1


def test_every_gpu_rule_writes_a_benchmark_file():
    texts = {path.name: path.read_text() for path in (REPO / "rules").glob("*.smk")}
    for rule, smk in (
        ("synth", "synth.smk"),
        ("sft", "sft.smk"),
        ("kd", "kd.smk"),
        ("eval_generate", "eval.smk"),
        ("eval_evalscope", "eval.smk"),
        ("eval_critic", "eval.smk"),
    ):
        body = re.search(rf"^rule {rule}:\n((?:    .*\n|\n)*)", texts[smk], re.MULTILINE).group(1)
        assert "    benchmark:\n" in body, rule
    assert '"logs/{study}/eval/{run}/generate.benchmark.tsv"' in texts["eval.smk"]  # one eval job per run
    assert '"logs/{study}/eval/{run}/evalscope.benchmark.tsv"' in texts["eval.smk"]


def test_a_job_that_logged_no_gpu_costs_no_gpu_hours(tmp_path):
    """The toy asks SLURM for a GPU for sft and kd but trains on CPU where none is found: its cost page
    showed GPU hours for a CPU run. A job whose log says "GPUs used: 0" now counts none; one that
    logged GPUs, or logged nothing (older logs, stages that do not log it), counts what it asked for."""
    logs = tmp_path / "logs" / "toy"
    _bench(logs / "kd" / "cpu_run.benchmark.tsv", 3600, 100.0, 3600)
    (logs / "kd" / "cpu_run.log").write_text("GPUs used: 0\nKD: 4 steps of 16 rollouts, loss rkl\n")
    _bench(logs / "kd" / "gpu_run.benchmark.tsv", 1800, 100.0, 1800)
    (logs / "kd" / "gpu_run.log").write_text("launching: accelerate ...\nGPUs used: 4\n")
    _bench(logs / "sft" / "no_note.benchmark.tsv", 3600, 100.0, 3600)
    rows = {row["stage"]: row for row in cost_rows(logs, {"kd": 4, "sft": 1})}
    assert rows["kd"]["gpu_hours"] == 2.0 and rows["kd"]["cpu_hours"] == 1.5
    assert rows["sft"]["gpu_hours"] == 1.0
    assert rows["all"]["gpu_hours"] == 3.0
