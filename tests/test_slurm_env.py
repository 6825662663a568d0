"""LLaMA-Factory's torchrun environment derived from a fabricated SLURM job environment."""

import pytest

from motab.training.slurm_env import expand_hostlist, torchrun_env

JOB = {
    "SLURM_JOB_ID": "123456",
    "SLURM_NNODES": "3",
    "SLURM_JOB_NODELIST": "gpu[009-010],dgx-a7",
    "SLURM_GPUS_ON_NODE": "8",
}


@pytest.mark.parametrize(
    "hostlist,hosts",
    [
        ("node1", ["node1"]),
        ("gpu[009-011,020]", ["gpu009", "gpu010", "gpu011", "gpu020"]),
        ("a[1-2],b,c[7]", ["a1", "a2", "b", "c7"]),
        ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),
        ("x[8-10]", ["x8", "x9", "x10"]),
    ],
)
def test_host_lists_expand_like_scontrol_show_hostnames(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


@pytest.mark.parametrize("bad", ["gpu[1-", "gpu[3-1]", "a,,b", "gpu[a-b]"])
def test_malformed_host_lists_are_refused_with_the_list_named(bad):
    with pytest.raises(ValueError, match="host list"):
        expand_hostlist(bad)


def test_every_node_of_a_job_gets_the_same_master_and_its_own_rank():
    envs = [torchrun_env(JOB | {"SLURM_NODEID": str(rank)}) for rank in range(3)]
    for rank, env in enumerate(envs):
        assert env == {
            "FORCE_TORCHRUN": "1",
            "NNODES": "3",
            "NODE_RANK": str(rank),
            "MASTER_ADDR": "gpu009",
            "MASTER_PORT": str(20000 + 123456 % 10000),
            "NPROC_PER_NODE": "8",
        }


def test_outside_slurm_nothing_is_derived_and_user_values_win():
    assert torchrun_env({"PATH": "/bin"}) == {}
    env = torchrun_env(JOB | {"SLURM_NODEID": "1", "MASTER_PORT": "29500"})
    assert env["MASTER_PORT"] == "29500" and env["NODE_RANK"] == "1"


@pytest.mark.parametrize(
    "change,message",
    [
        ({"SLURM_NODEID": "3"}, "SLURM_NODEID 3 outside"),
        ({"SLURM_NODEID": "0", "SLURM_NNODES": "2"}, "names 3 hosts"),
        ({"SLURM_NODEID": "x"}, "SLURM_NODEID should be"),
    ],
)
def test_inconsistent_slurm_environment_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        torchrun_env(JOB | change)


ONE_NODE = {"SLURM_JOB_ID": "77", "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "cpu01"}


@pytest.mark.parametrize("gpus", [{}, {"SLURM_GPUS_ON_NODE": "0"}, {"SLURM_GPUS_ON_NODE": "1"}])
def test_a_one_process_job_needs_no_torchrun(gpus):
    # today's failure: FORCE_TORCHRUN=1 without NPROC_PER_NODE, and LLaMA-Factory then asks torchrun
    # for torch.cuda.device_count() = 0 processes on a CPU node
    assert torchrun_env(ONE_NODE | gpus) == {}
    assert torchrun_env(ONE_NODE | gpus, visible_gpus=0) == {}


def test_gpus_that_cuda_cannot_see_do_not_become_processes():
    # four GPUs in the allocation (say, a misconfigured gres) but none visible: one CPU process
    assert torchrun_env(ONE_NODE | {"SLURM_GPUS_ON_NODE": "4"}, visible_gpus=0) == {}
    assert torchrun_env(ONE_NODE | {"SLURM_GPUS_ON_NODE": "4"}, visible_gpus=4)["NPROC_PER_NODE"] == "4"
    assert torchrun_env(ONE_NODE | {"SLURM_GPUS_ON_NODE": "4"})["NPROC_PER_NODE"] == "4"  # unknown: trusted


def test_a_multi_node_cpu_job_runs_one_process_per_node_never_zero():
    env = torchrun_env(JOB | {"SLURM_NODEID": "2", "SLURM_GPUS_ON_NODE": ""}, visible_gpus=0)
    assert env["NPROC_PER_NODE"] == "1" and env["NNODES"] == "3" and env["FORCE_TORCHRUN"] == "1"
