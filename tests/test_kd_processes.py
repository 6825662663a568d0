"""kd-train on several processes (one per GPU on a cluster; gloo on CPU here): the summed gradients
equal one process's over the whole batch, a two-process run trains, logs and resumes, and a SLURM
job with several GPUs relaunches itself under `accelerate launch`."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_onpolicy import kd_argv, read_csv, weights

from motab.training.kd import command as kd_command
from motab.training.kd import loop as kd_loop
from motab.training.kd import models as kd_models
from motab.training.kd import prompts as kd_prompts
from motab.training.kd import rollouts as kd_rollouts
from motab.training.kd import step as kd_step
from motab.training.processes import Processes, accelerate_command

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- the gradient


def batch_gradients(paths: dict, loss: str, processes: Processes, pieces: int = 1) -> tuple[dict, dict]:
    """This process's share of one fixed batch (4 prompts x 2 rollouts, sampled the same way on every
    process) in `pieces` micro-batches: (gradients summed over the processes, the step's metrics)."""
    torch.set_num_threads(1)
    args = kd_command.parse_args(
        [
            "--student",
            str(paths["student"]),
            "--teacher",
            str(paths["teacher"]),
            "--prompts",
            str(paths["prompts"]),
            "--output",
            "unused",
            "--loss",
            loss,
            "--steps",
            "1",
            "--prompts-per-step",
            "4",
            "--samples-per-prompt",
            "2",
            "--max-new-tokens",
            "8",
            "--temperature",
            "1.0",
            "--chunk-tokens",
            "5",
            "--lr",
            "1e-2",
            "--seed",
            "0",
            *(["--clip", "100"] if loss == "pwopsd" else []),
        ]
    )  # pwopsd: no token clipped
    torch.manual_seed(0)
    student, (teacher,), tokenizer = kd_models.load_models(*args, CPU)
    rollouts = kd_rollouts.sample_rollouts(student, tokenizer, kd_prompts.read_prompts(paths["prompts"])[:4], 2, 8, 1.0)
    share = len(rollouts.response) // processes.world
    size = share // pieces
    micro = [
        kd_step.MicroBatch(
            [0], kd_rollouts.rollout_rows(rollouts, slice(first, first + size)), [(slice(0, size), None)]
        )
        for first in range(processes.rank * share, (processes.rank + 1) * share, size)
    ]
    metrics, _ = kd_step.accumulate_gradients(student, [teacher], micro, args[0], processes)
    trainable = [q for q in student.parameters() if q.requires_grad]
    processes.sum_gradients(trainable)
    return {name: q.grad.clone() for name, q in student.named_parameters()}, metrics


def gloo_worker(rank: int, world: int, init_file: str, paths: dict, loss: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = batch_gradients(paths, loss, Processes(rank=rank, world=world, device=CPU))
        torch.save(result, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def assert_same_gradients(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name, expected in want.items():  # float32 sums in another order: within 1e-5 of each tensor's maximum
        scale = expected.abs().max().item()
        torch.testing.assert_close(got[name], expected, rtol=0, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("loss", ["rkl_onpolicy", "fkl", "pwopsd"])
def test_two_processes_sum_to_the_gradient_of_the_whole_batch(kd_setup, tmp_path, loss):
    """Each process takes half the rollouts; the summed gradients and the logged metrics are those of
    one process over all of them (token means for rkl_onpolicy and fkl, sequence means for pwopsd)."""
    paths = {key: str(kd_setup[key]) for key in ("student", "teacher", "prompts")}
    torch.multiprocessing.spawn(
        gloo_worker, args=(2, str(tmp_path / "rendezvous"), paths, loss, str(tmp_path / "g")), nprocs=2, join=True
    )
    whole, whole_metrics = batch_gradients(paths, loss, Processes(device=CPU))
    for rank in range(2):
        grads, metrics = torch.load(tmp_path / f"g.{rank}", weights_only=False)
        assert_same_gradients(grads, whole)
        assert metrics == pytest.approx(whole_metrics, rel=1e-5)
    assert all(g.abs().max() > 0 for name, g in whole.items() if "norm" not in name)


@pytest.mark.parametrize("loss", ["fkl", "pwopsd"])
def test_micro_batches_accumulate_to_the_gradient_of_the_whole_batch(kd_setup, loss):
    """--micro-batch-prompts: the 8 rollouts in 4 micro-batches (a backward each) give the gradient and the
    metrics of one backward over all of them."""
    paths = {key: str(kd_setup[key]) for key in ("student", "teacher", "prompts")}
    whole, whole_metrics = batch_gradients(paths, loss, Processes(device=CPU))
    grads, metrics = batch_gradients(paths, loss, Processes(device=CPU), pieces=4)
    assert_same_gradients(grads, whole)
    assert metrics == pytest.approx(whole_metrics, rel=1e-5)


def replica_worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        processes = Processes(rank=rank, world=world, device=CPU)
        torch.manual_seed(rank)  # as LoRA's init under each process's own seed
        layer = torch.nn.Linear(4, 4)
        outcome = []
        try:
            processes.check_replicas(layer.parameters(), "before broadcast")
        except RuntimeError as error:
            outcome.append(str(error))
        processes.broadcast(layer.parameters())
        processes.check_replicas(layer.parameters(), "after broadcast")
        outcome.append(layer.weight.detach().clone())
        torch.save(outcome, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_broadcast_gives_every_process_the_main_weights_and_a_mismatch_is_caught(tmp_path):
    torch.multiprocessing.spawn(
        replica_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path / "r")), nprocs=2, join=True
    )
    (error0, weight0), (error1, weight1) = (torch.load(tmp_path / f"r.{rank}") for rank in range(2))
    assert error0 == error1 == "before broadcast: the 2 training processes hold different weights"
    torch.manual_seed(0)
    assert torch.equal(weight0, weight1) and torch.equal(weight0, torch.nn.Linear(4, 4).weight.detach())


# ----------------------------------------------------------------------------- a real two-process run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(argv: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "motab",
        "kd-train",
        *argv,
    ]


def run_env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")


def kill_tree(pid: int) -> None:
    """SIGKILL a launcher and every process under it, as SLURM does to a cancelled job (torchrun starts
    its workers in sessions of their own, so killing its process group would leave them running)."""
    import psutil

    launcher = psutil.Process(pid)
    for process in [*launcher.children(recursive=True), launcher]:
        process.send_signal(signal.SIGKILL)


@pytest.mark.slow
def test_two_process_run_trains_logs_once_and_resumes_after_sigkill(kd_setup, tmp_path):
    """torchrun starts two kd-train processes (what `accelerate launch --multi_gpu` does per node).

    The main process alone writes the checkpoint and its log (one row per step, metrics over both
    processes). SIGKILL after the first saved state: the rerun resumes every process's RNG and
    ends with the uninterrupted two-process run's weights and log, bit for bit."""
    options = {"loss": "fkl", "steps": 6, "lr": 3e-3}
    full = subprocess.run(
        torchrun(kd_argv(kd_setup, tmp_path / "full", **options)),
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert full.returncode == 0, full.stderr[-3000:]
    record = json.loads((tmp_path / "full" / "model" / "kd_run.json").read_text())
    assert record["processes"] == 2 and record["final"]["steps"] == 6
    log = read_csv(tmp_path / "full" / "model" / kd_loop.LOG_FILE)
    assert [int(row["step"]) for row in log] == list(range(1, 7))
    assert sum(bool(re.match(r"\s*\d/6\s", line)) for line in full.stdout.splitlines()) == 6  # a progress line a step

    argv = kd_argv(kd_setup, tmp_path / "killed", "--save-steps", "2", **options)
    proc = subprocess.Popen(torchrun(argv), env=run_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial, deadline = tmp_path / "killed" / "model.partial", time.time() + 300
    while kd_loop.latest_training_state(partial) is None:
        assert proc.poll() is None and time.time() < deadline, "kd-train ended or stalled before its first save"
        time.sleep(0.01)
    kill_tree(proc.pid)
    proc.wait()
    assert not (tmp_path / "killed" / "model").exists()

    resumed = subprocess.run(torchrun(argv), env=run_env(), capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    out = tmp_path / "killed" / "model"
    assert (out / kd_loop.LOG_FILE).read_bytes() == (tmp_path / "full" / "model" / kd_loop.LOG_FILE).read_bytes()
    wa, wb = weights(tmp_path / "full" / "model"), weights(out)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_two_process_lora_self_distillation_trains_one_model(kd_setup, tmp_path):
    """PW-OPSD's setting on two processes: LoRA (its random init broadcast from the main process) and the
    student as its own teacher; the run checks that both processes end with the same weights."""
    argv = kd_argv(kd_setup, tmp_path, "--lora-rank", "4", "--clip", "40", teacher="self", loss="pwopsd", steps=3)
    done = subprocess.run(torchrun(argv), env=run_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "model" / "kd_run.json").read_text())
    assert record["processes"] == 2 and record["args"]["lora_rank"] == 4
    assert not any("lora" in name for name in weights(tmp_path / "model"))  # merged into a plain checkpoint


def test_prompts_per_step_must_split_evenly_over_the_processes(kd_setup):
    sources = kd_prompts.prompt_sources(*kd_command.parse_args(kd_argv(kd_setup, Path("unused"))))  # 2 per step
    kd_prompts.check_shares(sources, Processes(rank=0, world=2, device=CPU))
    with pytest.raises(ValueError, match=r"prompts_per_step 2 \(.*prompts.jsonl\) is not a multiple of the 4"):
        kd_prompts.check_shares(sources, Processes(rank=0, world=4, device=CPU))


def test_share_gives_each_process_its_own_contiguous_prompts():
    batch = [7, 3, 9, 1, 4, 8]
    shares = [Processes(rank=r, world=3, device=CPU).share(batch) for r in range(3)]
    assert shares == [[7, 3], [9, 1], [4, 8]]
    assert Processes(device=CPU).share(batch) == batch


# ----------------------------------------------------------------------------- the SLURM launch

SLURM = {
    "SLURM_JOB_ID": "4242",
    "SLURM_NNODES": "2",
    "SLURM_NODEID": "1",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_GPUS_ON_NODE": "4",
}


def test_slurm_job_with_several_gpus_relaunches_under_accelerate():
    argv = ["--student", "s", "--teacher", "self", "--prompts", "p.jsonl", "--output", "o"]
    command = accelerate_command(SLURM, argv)
    assert command == [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_machines",
        "2",
        "--machine_rank",
        "1",
        "--main_process_ip",
        "gpu07",
        "--main_process_port",
        "24242",
        "--num_processes",
        "8",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "motab",
        "kd-train",
        *argv,
    ]
    # the installed accelerate accepts it as a multi-GPU launch of the module `motab`
    from accelerate.commands.launch import launch_command_parser

    parsed = launch_command_parser().parse_args(command[3:])
    assert parsed.multi_gpu and parsed.module and parsed.num_processes == 8 and parsed.num_machines == 2
    assert parsed.training_script == "motab" and parsed.training_script_args == ["kd-train", *argv]


@pytest.mark.parametrize(
    "env",
    [
        {},  # not in SLURM
        {**SLURM, "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "gpu07", "SLURM_GPUS_ON_NODE": "1"},
        {**SLURM, "LOCAL_RANK": "0"},  # already a launched process
    ],
    ids=["no-slurm", "one-gpu", "launched"],
)
def test_one_gpu_or_a_launched_process_trains_in_place(env):
    assert accelerate_command(env, ["--student", "s"]) is None


def test_a_kd_job_on_two_nodes_runs_one_trainer_per_node(tmp_path):
    """`resources.kd.nodes: 2`: the job's command starts kd-train once per node under srun (each one then
    relaunches itself on its node's GPUs); one node runs it directly."""
    repo = Path(__file__).resolve().parents[1]
    override = tmp_path / "nodes.yaml"
    override.write_text("studies:\n  pwopsd:\n    resources:\n      kd: {nodes: 2}\n")
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("snakemake")),
            "-n",
            "--profile",
            "profiles/slurm",
            "--configfile",
            "config.yaml",
            str(override),
            "--",
            "all",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pwopsd = r"motab kd-train --student \S+ --teacher self --prompts results/pwopsd/"
    assert len(re.findall(r"srun --nodes=2 --ntasks-per-node=1 " + pwopsd, proc.stdout)) == 15
    opd = re.findall(r"(\S+) motab kd-train --student \S+ --teacher \S+ --prompts results/opd/", proc.stdout)
    assert opd and "srun" not in " ".join(opd)


# ----------------------------------------------------------------------------- micro-batches, checkpointing


def test_micro_batches_split_a_step_in_order_across_teachers():
    batches = [[4, 0, 2], [7, 5]]  # two teachers' prompts for this process's step
    assert kd_step.micro_batches(batches, 2) == [[[4, 0], []], [[2], [7]], [[], [5]]]
    assert kd_step.micro_batches(batches, 0) == [batches]
    assert kd_step.micro_batches(batches, 9) == [batches]


def test_sample_step_samples_this_process_share_micro_batch_by_micro_batch(kd_setup):
    """The sampling train() runs: 4 prompts a step on process 1 of 2 with --micro-batch-prompts 1 gives
    its 2 prompts (the step's last two) as 2 generate calls of 2 rollouts, each scored by teacher 0."""
    from transformers import AutoTokenizer

    args = kd_command.parse_args(kd_argv(kd_setup, Path("unused"), "--micro-batch-prompts", "1"))
    args = (args[0], dataclasses.replace(args[1], prompts_per_step=(4,)))
    sources = kd_prompts.prompt_sources(*args)
    tokenizer = AutoTokenizer.from_pretrained(kd_setup["student"])
    tokenizer.padding_side = "left"
    student, _, _ = kd_models.load_models(*args, CPU)
    micro = kd_step.sample_step(student, sources, tokenizer, args[0], 1, Processes(rank=1, world=2, device=CPU))
    assert len(micro) == 2
    for m, prompt in zip(micro, kd_prompts.source_batches(sources, 1)[0][2:]):
        assert m.teachers == [0] and m.rollouts.response.shape[0] == 2 and m.parts[0][0] == slice(0, 2)
        text = tokenizer.decode(m.rollouts.input_ids[0, : m.rollouts.prompt_len], skip_special_tokens=True)
        assert sources[0].conversations[prompt][0]["content"] in text


def test_gradient_checkpointing_changes_memory_not_the_result(kd_setup, tmp_path):
    """The student's layers recomputed in backward: the same weights and log as without, on CPU."""
    args = kd_command.parse_args(kd_argv(kd_setup, tmp_path, "--gradient-checkpointing", "true"))
    student, (teacher,), _ = kd_models.load_models(*args, CPU)
    assert student.is_gradient_checkpointing and not teacher.is_gradient_checkpointing
    plain = tmp_path / "plain"
    assert kd_command.main(kd_argv(kd_setup, plain, loss="fkl")) == 0
    assert kd_command.main(kd_argv(kd_setup, tmp_path / "ckpt", "--gradient-checkpointing", "true", loss="fkl")) == 0
    assert (tmp_path / "ckpt" / "model" / kd_loop.LOG_FILE).read_bytes() == (
        plain / "model" / kd_loop.LOG_FILE
    ).read_bytes()
    wa, wb = weights(plain / "model"), weights(tmp_path / "ckpt" / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_micro_batched_run_trains_and_logs_every_rollout(kd_setup, tmp_path):
    """One prompt per micro-batch (2 prompts x 2 rollouts a step): the log's rollout lengths cover all
    4 rollouts and the KL to the teacher falls."""
    assert (
        kd_command.main(
            kd_argv(kd_setup, tmp_path, "--micro-batch-prompts", "1", loss="fkl", steps=12, lr=3e-2, new_tokens=12)
        )
        == 0
    )
    out = tmp_path / "model"
    kl = [float(row["kl_to_teacher"]) for row in read_csv(out / kd_loop.LOG_FILE)]
    assert len(kl) == 12 and sum(kl[-3:]) < 0.7 * sum(kl[:3]), kl
