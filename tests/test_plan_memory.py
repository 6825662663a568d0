"""The plan-time GPU memory fit (motab/plan/memory.py): each GPU job's estimate per GPU against the
study's resources.gpu_memory_gb, one line naming the run, the estimate, the limit and the key."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from motab.plan import Study, compose, kd_server_errors, memory_errors, study_fits, workflow_config
from motab.plan.memory import fit_table
from motab.plan.servers import kd_teacher_server_args
from motab.report import memory as plan_memory
from motab.serving.placement import PlacementError

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PAPER_STUDIES = ["motab", "pwopsd", "cotfilter", "opd"]
# studies/motab.yaml's builtin rkl block at 1d89c9a: no dtype (float32), the 32B teacher in-process
RELEASED_RKL = {
    "engine": "builtin",
    "loss": "rkl",
    "steps": 100,
    "prompts_per_step": 16,
    "samples_per_prompt": 5,
    "max_new_tokens": 32768,
    "temperature": 1.0,
    "lr": 2.0e-6,
    "seed": 0,
}


@pytest.fixture(scope="module")
def config() -> dict:
    raw = workflow_config(REPO)
    raw.update(compose(raw))
    return raw


def with_kd_block(config: dict, study: str, name: str, block: dict) -> dict:
    changed = copy.deepcopy(config)
    changed["studies"][study]["kd"][name] = block
    return changed


def fit_of(config: dict, study: str, job: str):
    (fit,) = [f for f in study_fits(Study.of(config, study)) if f.job == job]
    return fit


def test_the_released_motab_kd_block_does_not_fit_and_says_so_in_one_line(config):
    errors = memory_errors(with_kd_block(config, "motab", "rkl", RELEASED_RKL))
    assert len(errors) == 1
    line = errors[0]
    assert "\n" not in line
    assert line.startswith("studies.motab.kd.rkl.dtype: kd sft_teacher_only_kd_rkl needs about 195.5 GB per GPU")
    assert "over its 80.0 GB of studies.motab.resources.gpu_memory_gb; change studies.motab.kd.rkl.dtype" in line


def test_in_bf16_the_32b_teacher_still_cannot_sit_beside_the_trained_4b_student(config):
    """65.6 GB of teacher + 32.2 GB of student weights, gradients and AdamW: the loss decides the way out."""
    rkl = memory_errors(with_kd_block(config, "motab", "rkl", RELEASED_RKL | {"dtype": "bfloat16"}))
    onpolicy = RELEASED_RKL | {"dtype": "bfloat16", "loss": "rkl_onpolicy"}
    assert [e.split(":")[0] for e in rkl] == ["studies.motab.kd.rkl.engine"]  # full distributions: KDFlow
    assert "97.8 GB" in rkl[0]
    errors = memory_errors(with_kd_block(config, "motab", "rkl", onpolicy))
    assert [e.split(":")[0] for e in errors] == ["studies.motab.kd.rkl.teacher_server"]


def test_every_paper_study_fits_as_configured(config):
    assert memory_errors(config) == []
    for name in PAPER_STUDIES:
        assert config["studies"][name]["resources"]["gpu_memory_gb"] == 80
        assert study_fits(Study.of(config, name))
    assert study_fits(Study.of(config, "toy")) == []  # no gpu_memory_gb: a CPU study


def test_the_fixed_motab_kd_job_splits_its_gpus_between_the_teacher_server_and_the_trainer(config):
    trainer = fit_of(config, "motab", "kd sft_teacher_only_kd_rkl")
    server = fit_of(config, "motab", "kd sft_teacher_only_kd_rkl teacher server")
    assert (trainer.gpus, round(trainer.estimate_gb, 1)) == (4, 32.2)  # 4.02B x (2 + 2 + 2 x 2) bytes
    assert (server.gpus, round(server.estimate_gb, 1), server.limit_gb) == (4, 16.4, 68.0)  # 32.8B x 2 / tp 4
    study = Study.of(config, "motab")
    flags = kd_teacher_server_args(study, "sft_teacher_only_kd_rkl", "Qwen3-32B", "x.log")
    assert '"teacher":{"gpus":[0,1,2,3]' in flags and '"trainer":{"gpus":[4,5,6,7]' in flags
    assert "--tp-size 4" in flags


def test_zero3_divides_what_sft_trains_over_the_gpus(config):
    full = fit_of(config, "motab", "sft sft_teacher_only")
    assert round(full.estimate_gb, 2) == round(4.02 * 16 / 8, 2)  # bf16 weights, grads, fp32 Adam / 8 GPUs
    changed = copy.deepcopy(config)
    changed["studies"]["motab"]["sft"].pop("deepspeed")
    unsharded = fit_of(changed, "motab", "sft sft_teacher_only")
    assert round(unsharded.estimate_gb, 2) == round(4.02 * 16, 2) and unsharded.fits
    changed["studies"]["motab"]["sft"]["finetuning_type"] = "full"
    changed["studies"]["motab"]["runs"]["sft_teacher_only"]["from"] = "Qwen2-7B"
    errors = memory_errors(changed)
    assert any(e.startswith("studies.motab.sft.deepspeed: sft sft_teacher_only needs about 121.9 GB") for e in errors)


def test_a_server_whose_weights_fill_its_share_of_the_gpu_names_the_models_tp(config):
    changed = copy.deepcopy(config)
    changed["models"]["Qwen3-32B"]["tp"] = 1
    assert memory_errors(changed) == []  # 65.6 GB of bf16 weights within 0.85 x 80 GB
    changed["studies"]["motab"]["resources"]["gpu_memory_gb"] = 40
    errors = [e for e in memory_errors(changed) if "synth teacher_only teacher server" in e]
    assert errors == [
        "models.Qwen3-32B.tp: synth teacher_only teacher server needs about 65.6 GB per GPU (Qwen3-32B bf16 "
        "weights / tp 1, in --mem-fraction-static 0.85), over its 34.0 GB of studies.motab.resources.gpu_memory_gb;"
        " change models.Qwen3-32B.tp"
    ]


def test_a_hub_model_without_a_parameter_count_is_named(config):
    changed = copy.deepcopy(config)
    del changed["models"]["Qwen3-8B"]["params_b"]
    errors = memory_errors(changed)
    assert any(e.startswith("models.Qwen3-8B.params_b: the parameter count") for e in errors)


def test_training_gpus_must_share_the_prompts_evenly(config):
    changed = copy.deepcopy(config)
    changed["studies"]["opd"]["resources"]["kd"]["servers"] = {"teacher": {"dp": 1}}  # 7 trainers for 512
    with pytest.raises(PlacementError, match=r"studies\.opd\.kd\.opd\.prompts_per_step: \[512\]"):
        kd_teacher_server_args(Study.of(changed, "opd"), "sft_openthoughts3_opd", "Qwen3-8B", "x.log")
    assert kd_server_errors(config) == []
    (line,) = kd_server_errors(changed)  # what `snakemake -n` stops with
    assert line.startswith("studies.opd.kd.opd.prompts_per_step: [512] prompts a step do not split evenly over the 7")


def test_the_table_is_sorted_as_planned_and_the_command_prints_it(config, capsys):
    fits = study_fits(Study.of(config, "motab"))
    table = fit_table(fits)
    assert table.splitlines()[0].split("\t")[:6] == ["study", "job", "gpus", "estimate_gb_per_gpu", "limit_gb", "fits"]
    assert "motab\tkd sft_teacher_only_kd_rkl\t4\t32.2\t80.0\tyes\t" in table
    assert plan_memory.main(["--root", str(REPO), "--study", "motab"]) == 0
    assert capsys.readouterr().out == table


def test_snakemake_dry_run_stops_on_the_released_block_with_one_line(tmp_path):
    overlay = tmp_path / "released.yaml"
    block = RELEASED_RKL | {"teacher_server": False, "dtype": "float32"}  # 1d89c9a's block, written out
    overlay.write_text(yaml.safe_dump({"select": PAPER_STUDIES, "studies": {"motab": {"kd": {"rkl": block}}}}))
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "--configfile", "config.yaml", str(overlay)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "needs about" in line]
    assert len(lines) == 1
    assert lines[0].startswith(f"config: {overlay}:")
    assert "studies.motab.kd.rkl.dtype: kd sft_teacher_only_kd_rkl needs about 195.5 GB per GPU" in lines[0]


def test_the_rules_command_writes_the_plans_table_and_its_html(config, tmp_path):
    from motab.plan import fits_json

    fits = study_fits(Study.of(config, "opd"))
    tsv, html = tmp_path / "gpu_memory.tsv", tmp_path / "gpu_memory.html"
    assert plan_memory.main(["--fits-json", fits_json(fits), "--tsv", str(tsv), "--html", str(html)]) == 0
    assert tsv.read_text() == fit_table(fits)
    assert "<td>kd sft_openthoughts3_opd teacher server</td>" in html.read_text()


def test_servers_sharing_their_gpus_each_get_their_slice(config):
    changed = copy.deepcopy(config)
    changed["studies"]["motab"]["resources"]["synth"] |= {"share_gpus": True, "servers": {"student": {"dp": 1}}}
    teacher = fit_of(changed, "motab", "synth motab teacher server")
    assert teacher.limit_gb == pytest.approx(80 * 0.425) and teacher.fits  # 0.85 / 2 of the GPU
    assert "--mem-fraction-static 0.425" in teacher.parts
