"""GPU placement of a job's inference servers: disjoint blocks sized by tp x dp, a clear error at
planning when they do not fit, and CUDA_VISIBLE_DEVICES mapped onto the job's own GPUs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from motab.serving.launch import render_command, server_env
from motab.serving.placement import (
    Placement,
    PlacementError,
    ServerNeed,
    from_json,
    job_gpus,
    place,
    server_args,
    to_json,
    visible_devices,
)

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SGLANG = (
    "python -m sglang.launch_server --model-path {model} --host {host} --port {port} --tp-size 4"
    " --dp-size 1 --enable-deterministic-inference"
)


def test_teacher_and_student_get_disjoint_gpu_blocks_in_order():
    needs = [ServerNeed("teacher", "Qwen3-32B", tp=4), ServerNeed("student", "Qwen3-4B", dp=4)]
    teacher, student = place(needs, budget=8)
    assert teacher.gpus == (0, 1, 2, 3) and student.gpus == (4, 5, 6, 7)
    assert teacher.mem_fraction is None and student.mem_fraction is None
    assert job_gpus(needs) == 8
    # the job asks only for what its servers use: a 1-GPU student under an 8-GPU budget takes 5
    assert job_gpus([ServerNeed("teacher", "t", tp=4), ServerNeed("student", "s")]) == 5


def test_more_gpus_than_the_stage_has_names_the_key_and_the_need():
    needs = [ServerNeed("teacher", "Qwen3-32B", tp=4), ServerNeed("student", "Qwen3-4B", tp=1)]
    with pytest.raises(PlacementError) as info:
        place(needs, budget=4, where="studies.motab.resources.synth.gpus")
    message = str(info.value)
    assert "studies.motab.resources.synth.gpus: gpus is 4, but the job's servers need 5" in message
    assert "teacher Qwen3-32B tp 4 x dp 1 = 4" in message and "share_gpus" in message


def test_shared_gpus_split_the_memory_fraction():
    needs = [ServerNeed("teacher", "t", tp=2), ServerNeed("student", "s", tp=2)]
    teacher, student = place(needs, budget=2, share=True)
    assert teacher.gpus == student.gpus == (0, 1)
    assert teacher.mem_fraction == student.mem_fraction == 0.425
    argv = render_command(SGLANG, model="m", host="h", port=1)
    assert server_args(argv, teacher) == ["--mem-fraction-static", "0.425"]
    # the embedded server takes no SGLang flag; a command that sets the fraction itself keeps it
    assert server_args(["python", "-m", "motab", "serve"], teacher) == []
    assert server_args(argv + ["--mem-fraction-static", "0.3"], teacher) == []


def test_cpu_jobs_have_no_placement():
    placements = place([ServerNeed("teacher", "toy", tp=4)], budget=0)
    assert placements == [Placement("teacher", ())]
    assert visible_devices(placements[0], "0,1") is None


def test_json_round_trip_and_bad_json():
    placements = place([ServerNeed("teacher", "t", tp=2), ServerNeed("student", "s")], budget=3)
    parsed = from_json(to_json(placements))
    assert parsed["teacher"].gpus == (0, 1) and parsed["student"].gpus == (2,)
    assert from_json("") == {} and from_json(None) == {}
    with pytest.raises(ValueError, match=r"placement.teacher.gpus"):
        from_json('{"teacher": {"gpus": "0,1"}}')


def test_visible_devices_map_onto_the_jobs_own_gpus():
    student = Placement("student", (4, 5, 6, 7))
    assert visible_devices(student, None) == "4,5,6,7"
    # SLURM gave the job physical GPUs 8-15: the student's job GPUs 4-7 are physical 12-15
    assert visible_devices(student, "8,9,10,11,12,13,14,15") == "12,13,14,15"
    with pytest.raises(PlacementError, match="sees only 4"):
        visible_devices(student, "0,1,2,3")
    env = server_env(student, {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "8,9,10,11,12,13,14,15"})
    assert env["CUDA_VISIBLE_DEVICES"] == "12,13,14,15"
    assert server_env(None, {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "3"})["CUDA_VISIBLE_DEVICES"] == "3"


# ----------------------------------------------------------------------------- the paper studies' plan


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--profile", "profiles/slurm", "all", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def paper_plan() -> str:
    proc = _plan()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _synth_commands(plan: str, study: str) -> dict[str, str]:
    """{synthesis entry (motab, skd_gamma0p6, motab_7b, ...): its command} of a study's plan."""
    commands = {}
    for line in plan.splitlines():
        if re.search(rf"motab synth --method \w+ --problems results/{study}/", line):
            commands[re.search(rf"--server-log logs/{study}/synth/(\S+)\.server\.log", line).group(1)] = line
    return commands


def test_paper_synthesis_servers_get_disjoint_gpus(paper_plan):
    commands = _synth_commands(paper_plan, "motab")
    gammas = ("0p6", "0p7", "0p8", "0p9", "1p0")
    drafting = ["motab", "motab_7b", *(f"skd{s}_gamma{g}" for s in ("", "_7b") for g in gammas)]
    assert sorted(commands) == sorted([*drafting, "teacher_only"])
    for method in drafting:  # every entry whose student drafts, the sweeps' and the second student's too
        placement = from_json(re.search(r"--placement '([^']*)'", commands[method]).group(1))
        teacher, student = placement["teacher"].gpus, placement["student"].gpus
        assert teacher == (0, 1, 2, 3) and student == (4, 5, 6, 7) and not set(teacher) & set(student)
        # each server is started with its own model's parallelism, not the teacher's
        assert "--tp-size 4 --dp-size 1" in commands[method] and "--tp-size 1 --dp-size 4" in commands[method]
    assert json.loads(re.search(r"--placement '([^']*)'", commands["teacher_only"]).group(1)) == {
        "teacher": {"gpus": [0, 1, 2, 3], "mem_fraction": None}
    }


def test_a_stage_with_too_few_gpus_stops_the_plan(tmp_path):
    override = tmp_path / "small.yaml"
    override.write_text("studies:\n  motab:\n    resources:\n      synth: {gpus: 4}\n")
    proc = _plan("--configfile", "config.yaml", str(override), "--config", "select=[motab]")
    assert proc.returncode != 0
    assert "studies.motab.resources.synth.gpus: gpus is 4, but the job's servers need 8" in proc.stdout + proc.stderr


def test_paper_plan_seeds_reproduce_and_eval_sampling_is_explicit(paper_plan):
    lines = paper_plan.splitlines()
    servers = [line for line in lines if "sglang.launch_server" in line]
    assert servers and all("--enable-deterministic-inference" in line for line in servers)
    generate = [line for line in lines if "motab eval-generate" in line]
    assert generate
    for line in generate:  # a run's jobs each state their sampling in --jobs-json
        for job in json.loads(re.search(r"--jobs-json '([^']*)'", line).group(1)):
            assert {"temperature", "top_p", "top_k", "max_tokens", "seed", "n"} <= set(job), line[:200]


def test_paper_plan_starts_one_eval_server_per_run(paper_plan):
    """Each evaluated run of a paper study is one eval-generate job (one server start) holding all its
    benchmarks x seeds, sized to its model's tp; grading stays one job per (run, benchmark, seed)."""
    from motab.plan import workflow_config

    config = workflow_config(REPO)
    # the motab study evaluates through EvalScope as its release does: one eval_evalscope job (and
    # server start) per (run, benchmark, seed) there, not grouped (a known gap)
    for study in ("pwopsd", "cotfilter", "opd"):
        cfg = config["studies"][study]
        runs = sorted({run for table in cfg["tables"].values() for run in table["rows"]})
        per_run = len(cfg["eval"]["benchmarks"]) * len(cfg["eval"]["seeds"])
        starts = [
            line for line in paper_plan.splitlines() if "motab eval-generate" in line and f"logs/{study}/eval/" in line
        ]
        assert len(starts) == len(runs), study
        seen = set()
        for line in starts:
            jobs = json.loads(re.search(r"--jobs-json '([^']*)'", line).group(1))
            assert len(jobs) == per_run
            run = re.search(rf"logs/{study}/eval/([^/]+)/generate.server.log", line).group(1)
            seen.add(run)
            assert {job["output"] for job in jobs} == {
                f"results/{study}/eval/{run}/{bench}/seed{seed}.responses.jsonl"
                for bench in cfg["eval"]["benchmarks"]
                for seed in cfg["eval"]["seeds"]
            }
        assert seen == set(runs)
        assert paper_plan.count(f"motab eval-grade --responses results/{study}/") == len(runs) * per_run


def test_server_flags_of_the_cpu_and_gpu_plans_each_carry_their_value(paper_plan):
    """In the toy plan (CPU: no placement) and the paper plan (GPUs) every server-starting `motab`
    command gives each value flag its value: an empty --placement once swallowed the next flag."""
    import shlex

    toy = subprocess.run([SNAKEMAKE, "-n", "-p", "all"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert toy.returncode == 0, toy.stderr[-2000:]
    valued = ("--placement", "--server-command", "--student-server-command", "--max-in-flight", "--model")
    checked = {"toy": 0, "paper": 0}
    for plan, text in (("toy", toy.stdout), ("paper", paper_plan)):
        for line in text.splitlines():
            if "Shell command: " not in line or not re.search(
                r"(^|\s)motab (eval-generate|synth|eval-critic) ", line.split("Shell command: ", 1)[-1]
            ):
                continue
            words = shlex.split(line.split("Shell command: ", 1)[1].split(" > ", 1)[0])
            for i, word in enumerate(words):
                if word in valued:
                    assert i + 1 < len(words) and not words[i + 1].startswith("--"), (word, line)
            if "--placement" in words:
                assert plan == "paper" and words[words.index("--placement") + 1].startswith("{"), line
            checked[plan] += 1
    assert checked["toy"] > 10 and checked["paper"] > 50, checked
