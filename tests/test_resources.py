"""What each job asks SLURM for (motab.plan.resources): partitions by GPU use, CPUs and memory by the
job's GPUs, and, over the paper studies' SLURM plan, limits an admin accepts."""

import shlex

import pytest
from slurm_plan import paper_jobs

RESOURCES = {
    "default": {"gpus": 0, "cpus_per_task": 2, "mem_mb": 8000, "runtime": 60},
    "eval_generate": {"gpus": 4, "cpus_per_gpu": 4, "mem_mb_per_gpu": 48000, "runtime": 720},
    "sft": {"gpus": 8, "cpus_per_task": 32, "mem_mb": 256000, "runtime": 720, "partition": "h100", "qos": "long"},
}
SLURM = {"gpu": {"partition": "gpu", "qos": "gpu-normal"}, "cpu": {"partition": "cpu"}}


def test_cpus_and_memory_follow_the_jobs_gpus():
    from motab.plan.resources import job_resources

    assert job_resources(RESOURCES, SLURM, "eval_generate", 1) | {} == {
        "gpu": 1, "cpus_per_task": 4, "mem_mb": 48000, "runtime": 720, "slurm_partition": "gpu", "qos": "gpu-normal",
    }  # fmt: skip
    assert job_resources(RESOURCES, SLURM, "eval_generate", 4)["mem_mb"] == 192000
    # a study whose eval runs on CPU (the toy): the stage's whole-job values, the CPU partition, no QOS
    cpu = job_resources(RESOURCES | {"eval_generate": {"gpus": 0}}, SLURM, "eval_generate", 0)
    assert (cpu["cpus_per_task"], cpu["mem_mb"], cpu["slurm_partition"], "qos" in cpu) == (2, 8000, "cpu", False)


def test_a_stage_names_its_own_partition_and_qos_and_nothing_is_set_without_config():
    from motab.plan.resources import job_resources

    sft = job_resources(RESOURCES, SLURM, "sft", 8)
    assert (sft["slurm_partition"], sft["qos"]) == ("h100", "long")
    assert "slurm_partition" not in job_resources(RESOURCES, {}, "data", 0)


@pytest.mark.slow
def test_the_paper_plan_asks_for_what_each_job_uses():
    jobs = [job for job in paper_jobs() if job.rule not in ("all", "download_hub", "lock_hub")]  # login node
    cpu_jobs = [job for job in jobs if not job.resources["gpu"]]
    assert len(cpu_jobs) > 100
    on_gpu_partition = [job.name for job in cpu_jobs if job.resources.get("slurm_partition") == "gpu"]
    assert not on_gpu_partition, on_gpu_partition[:5]
    assert all(job.resources["slurm_partition"] == "gpu" for job in jobs if job.resources["gpu"])
    for job in jobs:
        gpus = job.resources["gpu"]
        # host memory: at most 64 GB per GPU (8 GPUs: 512 GB), 16 GB for a CPU job; CPUs at most 8 per GPU
        assert job.resources["mem_mb"] <= (64000 * gpus if gpus else 16000), job.name
        assert job.resources["cpus_per_task"] <= max(8 * gpus, 4), job.name
    one_gpu_evals = [job for job in jobs if job.rule.startswith("eval_") and job.resources["gpu"] == 1]
    assert one_gpu_evals and all(job.resources["mem_mb"] <= 48000 for job in one_gpu_evals)
    assert all(job.resources["cpus_per_task"] <= 4 for job in one_gpu_evals)
    long_jobs = {job.rule for job in jobs if job.resources["runtime"] > 1440}
    assert long_jobs <= {"kd", "eval_generate_run_pwopsd"}, long_jobs  # the two that generate ~10^8 tokens


@pytest.mark.slow
def test_kd_threads_come_from_the_jobs_allocation_not_the_planning_host():
    kd = [job for job in paper_jobs() if job.rule == "kd"]
    assert kd
    for job in kd:
        assert "--threads" not in shlex.split(job.command), job.name


def test_kd_train_threads_default_to_the_jobs_share(monkeypatch):
    import json

    from dryrun import REPO

    from motab.plan import compose, workflow_config
    from motab.training.kd.command import parse_args

    block = compose(workflow_config(REPO), REPO)["studies"]["motab"]["kd"]["rkl"]
    argv = ["--student", "s", "--teacher", "t", "--prompts", "p.jsonl", "--output", "o"]
    argv += ["--config-json", json.dumps(block)]
    monkeypatch.setenv("OMP_NUM_THREADS", "32")  # what motab.jobenv sets from SLURM_CPUS_PER_TASK
    assert parse_args(argv)[1].threads == 32
