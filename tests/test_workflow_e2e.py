"""The toy study end to end through Snakemake (reduced budgets), and what a user relies on:
real stages, byte-identical tables, nothing to redo after a run, eval-only changes rerun eval only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
REDUCED = REPO / "tests" / "configs" / "toy_reduced.yaml"


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [SNAKEMAKE, "--configfile", "config.yaml", str(REDUCED), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if check and proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))[-5:])
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n{logs}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}; empty when nothing is to be done."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A copy of the workflow that has run the reduced toy study to its tables."""
    workdir = tmp_path_factory.mktemp("workflow")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, workdir / name)
    for name in ("rules", "schemas", "profiles", "envs", "report", "studies", "scripts"):
        shutil.copytree(REPO / name, workdir / name)
    snakemake(workdir)
    return workdir


@pytest.mark.e2e
def test_table_has_every_run_with_mean_and_std(study):
    table = (study / "results/toy/tables/main.md").read_text()
    # sft_motab's eval_epochs [1, 2] (the reduced study) and the SKD gamma sweep [0.9, 0.8] give two rows each
    labels = (
        "Student (base)",
        "Teacher",
        "SFT on teacher-only data",
        "SFT on filtered teacher CoT",
        "SFT on MOTAB data (epoch 1)",
        "SFT on MOTAB data (epoch 2)",
        "SFT on SKD data (gamma 0.9)",
        "SFT on SKD data (gamma 0.8)",
        "SFT + KD (RKL)",
        "SFT + KD (FKL)",
        "SFT + KD (OPSD loss)",
        "SFT + KD (PW-OPSD loss)",
    )
    rows = {}
    for label in labels:
        rows[label] = next(line for line in table.splitlines() if line.startswith(f"| {label} "))
        assert re.search(r"\d+\.\d\d ± \d+\.\d\d", rows[label]), rows[label]
    assert "Teacher share" in table.splitlines()[2]

    def last_cell(label):
        return [cell.strip() for cell in rows[label].strip().strip("|").split("|")][-1]

    def share(label):
        return float(last_cell(label))

    assert share("SFT on teacher-only data") == 1.0 == share("SFT on filtered teacher CoT")
    assert share("SFT + KD (RKL)") == 1.0  # KD rows report the share of the data their SFT start used
    # MOTAB and SKD mix both models; the table rounds (the reduced study's weak student gets
    # nearly every MOTAB step rejected: 0.999 prints as 1.00), so the exact shares come from stats.
    for label, method in (
        ("SFT on MOTAB data (epoch 2)", "motab"),
        ("SFT on SKD data (gamma 0.9)", "skd_gamma0p9"),
        ("SFT on SKD data (gamma 0.8)", "skd_gamma0p8"),
    ):
        exact = json.loads((study / f"results/toy/synth/{method}.stats.json").read_text())["teacher_share"]
        assert 0.0 < exact < 1.0 and last_cell(label) == f"{exact:.2f}", (label, exact)
    assert last_cell("Teacher") == ""  # no synthesized data behind the teacher's row
    csv = (study / "results/toy/tables/main.csv").read_text()
    assert csv.count("\n") >= 11


@pytest.mark.e2e
def test_stages_are_real(study):
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(study / "results/toy/models/toy-student").state_dict()
    sft = AutoModelForCausalLM.from_pretrained(study / "results/toy/ckpt/sft/sft_teacher_only").state_dict()
    kd = AutoModelForCausalLM.from_pretrained(study / "results/toy/ckpt/kd/sft_teacher_only_kd_rkl").state_dict()
    assert any(not torch.equal(base[k], sft[k]) for k in base)
    assert any(not torch.equal(sft[k], kd[k]) for k in sft)
    assert (study / "results/toy/ckpt/sft/sft_teacher_only/llamafactory_train.yaml").exists()
    # save_strategy epoch: one loadable checkpoint per epoch; the last epoch's weights are the final ones
    motab = study / "results/toy/ckpt/sft/sft_motab"
    assert sorted(p.name for p in motab.glob("epoch*")) == ["epoch1", "epoch2"]
    first = AutoModelForCausalLM.from_pretrained(motab / "epoch1").state_dict()
    last = AutoModelForCausalLM.from_pretrained(motab / "epoch2").state_dict()
    final = AutoModelForCausalLM.from_pretrained(motab).state_dict()
    assert all(torch.equal(last[k], final[k]) for k in final) and any(
        not torch.equal(first[k], final[k]) for k in final
    )

    def responses(run):
        data = json.loads((study / f"results/toy/eval/{run}/toy_test/seed0.json").read_text())
        assert data["provenance"]["config_hash"] and data["provenance"]["packages"]
        return [s["responses"] for s in data["samples"]]

    assert responses("base_student") != responses("sft_teacher_only")
    synth = [json.loads(line) for line in (study / "results/toy/synth/teacher_only.jsonl").read_text().splitlines()]
    per_problem = {}
    for row in synth:
        per_problem.setdefault(row["id"], set()).add(row["sample"])
    assert len(per_problem) == 300 and all(samples == {0, 1} for samples in per_problem.values())
    assert all(row["stats"]["teacher_tokens"] > 0 for row in synth)


@pytest.mark.e2e
def test_tables_rebuild_byte_identical(study, tmp_path):
    evals = sorted(str(p) for p in (study / "results/toy/eval").rglob("seed*.json"))
    prefix = tmp_path / "again"
    synth = study / "results/toy/synth"
    shares = [
        f"sft_teacher_only={synth / 'teacher_only.stats.json'}",
        f"sft_teacher_only_filtered={synth / 'teacher_only.filtered.stats.json'}",
        *(
            f"sft_teacher_only_kd_{loss}={synth / 'teacher_only.stats.json'}"
            for loss in ("rkl", "fkl", "opsd", "pwopsd")
        ),
        *(f"sft_motab_ep{epoch}={synth / 'motab.stats.json'}" for epoch in (1, 2)),
        *(f"sft_skd_gamma{g}={synth / f'skd_gamma{g}.stats.json'}" for g in ("0p9", "0p8")),
        f"sft_motab_paper={synth / 'motab_paper.stats.json'}",
        f"sft_skd_paper={synth / 'skd_paper.stats.json'}",
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "motab",
            "tables",
            "--spec",
            str(study / "results/toy/tables/main.spec.json"),
            "--evals",
            *reversed(evals),
            "--teacher-share",
            *reversed(shares),
            "--output-prefix",
            str(prefix),
        ],
        check=True,
        cwd=study,
    )
    for ext in ("md", "csv", "tex"):
        assert (study / f"results/toy/tables/main.{ext}").read_bytes() == prefix.with_suffix(f".{ext}").read_bytes()


@pytest.mark.e2e
def test_second_run_has_nothing_to_do(study):
    assert planned_jobs(snakemake(study, "-n").stdout) == {}


@pytest.mark.e2e
def test_eval_only_change_reruns_only_eval_and_tables(study):
    proc = snakemake(study, "-n", "--config", "eval_override=1", check=False)  # unknown key: schema stops it
    assert proc.returncode != 0 and "eval_override" in proc.stdout + proc.stderr
    changed = study / "changed.yaml"
    changed.write_text("studies:\n  toy:\n    eval: {temperature: 0.7}\n")
    plan = planned_jobs(
        subprocess.run(
            [SNAKEMAKE, "-n", "--configfile", "config.yaml", str(REDUCED), str(changed)],
            cwd=study,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    # 14 table rows x 2 eval seeds; training curves read checkpoints only, so they stay; the cost
    # table reads every job's benchmark file, so it follows
    assert plan == {"eval_generate": 28, "eval_grade": 28, "table": 1, "table_chart": 1, "cost_table": 1, "all": 1}


@pytest.mark.e2e
def test_report_has_tables_chart_and_curves(study):
    snakemake(study, "--report", "report.html")
    html = (study / "report.html").read_text()
    # the table is an HTML page in the report (its numbers show when opened); md/CSV are plain outputs
    for name in ("main.html", "main.png", "training_curves.png", "cost.html"):
        assert name in html, name
    assert html.count("data:image/png") >= 2  # the chart and the curves are embedded in the page


@pytest.mark.e2e
def test_report_opens_in_a_headless_browser_and_shows_the_chart(study, tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    from report_screenshot import find_browser, screenshot

    if find_browser() is None:
        if os.environ.get("CI"):  # .ci/run installs Chromium: a CI run without it is a broken check
            pytest.fail("no headless browser (chromium) in CI: .ci/run should have installed it")
        pytest.skip("no headless browser (chromium) on this machine: apt-get install chromium")
    if not (study / "report.html").exists():
        snakemake(study, "--report", "report.html")
    shot = tmp_path / "report.png"
    state = screenshot(study / "report.html", shot, ["Tables", "chart", "view:main"])
    charts = [img for img in state["images"] if img["src"].startswith("data:image/png") and img["w"] >= 300]
    assert charts, state["images"]  # the chart decoded and is shown
    from PIL import Image

    pixels = Image.open(shot).convert("RGB").getdata()
    orange = sum(1 for r, g, b in pixels if abs(r - 255) < 8 and abs(g - 127) < 10 and b < 30)  # matplotlib C1 bars
    assert orange > 500, f"the teacher's (C1 orange) bars are not on the screenshot ({orange} pixels)"


RUN_RECORDS = ("pretrain.json", "sft_run.json", "kd_run.json")  # the pipeline's own files in model folders


@pytest.mark.e2e
def test_every_json_output_names_its_provenance_and_tables_carry_none(study):
    results = study / "results/toy"
    written = []
    for path in sorted(results.rglob("*.json")):
        parts = path.relative_to(results).parts
        if parts[0] in ("models", "ckpt") and path.name not in RUN_RECORDS:
            continue  # Hugging Face / LLaMA-Factory files of a checkpoint
        if path.name == "dataset_info.json" or path.name.endswith(".spec.json"):
            continue  # LLaMA-Factory's dataset registry (keys are dataset names); the table's own spec
        written.append(path)
    kinds = {
        "eval"
        if re.fullmatch(r"seed\d+\.json", p.name)
        else p.name
        if p.name in RUN_RECORDS
        else p.name.split(".", 1)[1]
        for p in written
    }
    assert {"eval", "stats.json", "filtered.stats.json", "filter_counts.json", *RUN_RECORDS} <= kinds, kinds
    stamps = set()
    for path in written:
        stamp = json.loads(path.read_text()).get("provenance")
        assert stamp and re.fullmatch(r"[0-9a-f]{16}", stamp["config_hash"]), path
        assert stamp["code_version"] and "torch" in stamp["packages"], path
        stamps |= {stamp["config_hash"], stamp["code_version"]}
    for ext in ("md", "csv", "tex"):
        table = (results / f"tables/main.{ext}").read_text()
        assert not any(value in table for value in stamps) and "provenance" not in table
