"""The processes of one `kd-train` run: one per GPU, started by `accelerate launch` (or torchrun).

Data parallel, written out rather than hidden in a wrapper, because each step samples before it
trains: every process holds the whole student (and its teachers), takes its share of the step's
prompts, samples and scores its own rollouts, and scales its loss by its share of the step's loss
units (tokens; sequences for pwopsd). The gradients summed over the processes are then the gradient
of the loss over the whole step's batch, as one process would compute it on the same rollouts.
After that all-reduce every process makes the same optimizer step, so the weights stay identical.

In a SLURM job with several GPUs on the node (SLURM_GPUS_ON_NODE) or several nodes, `motab kd-train`
starts itself again under `accelerate launch --multi_gpu`, once per node (the rule runs it with
`srun --ntasks-per-node=1`), with the rendezvous derived from SLURM as for SFT (slurm_env).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from motab.training.slurm_env import torchrun_env


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Processes:
    """This process's place in the run; the default is a run of one process."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=default_device)

    @property
    def main(self) -> bool:
        """The process that logs and writes files."""
        return self.rank == 0

    def share(self, batch: list[int]) -> list[int]:
        """This process's contiguous share of a step's prompt indices (len(batch) is a multiple of world)."""
        size = len(batch) // self.world
        return batch[self.rank * size : (self.rank + 1) * size]

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the processes (float64)."""
        if self.world == 1:
            return [float(v) for v in values]
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(total)
        return total.tolist()

    def sum_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over the processes (a missing gradient counts as zeros)."""
        if self.world == 1:
            return
        for parameter in parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            torch.distributed.all_reduce(parameter.grad)

    def broadcast(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Give every process the main process's values (LoRA's random init differs by process seed)."""
        if self.world == 1:
            return
        with torch.no_grad():
            for parameter in parameters:
                torch.distributed.broadcast(parameter.data, src=0)

    def check_replicas(self, parameters: Iterable[torch.nn.Parameter], when: str) -> None:
        """Raise unless every process holds the same weights (a missed broadcast or sum would otherwise
        train a different model on each GPU without a sign)."""
        if self.world == 1:
            return
        with torch.no_grad():  # reductions in the weights' own dtype: no full-size copy of an 8B model
            digest = [(float(q.sum()), float(q.norm())) for q in parameters]
        if len({tuple(d) for d in self.gather(digest)}) > 1:
            raise RuntimeError(f"{when}: the {self.world} training processes hold different weights")

    def gather(self, value: Any) -> list[Any]:
        """Every process's value, in rank order (on every process)."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        torch.distributed.all_gather_object(values, value)
        return values


def current_processes(env: Mapping[str, str] = os.environ) -> Processes:
    """This process's place, from the launcher's WORLD_SIZE/RANK (accelerate's state sets up the group)."""
    if int(env.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo on CPU, nccl on GPUs
    device = state.device if torch.cuda.is_available() else torch.device("cpu")
    return Processes(rank=state.process_index, world=state.num_processes, device=device)


def accelerate_command(env: Mapping[str, str], argv: list[str], visible_gpus: int | None = None) -> list[str] | None:
    """The `accelerate launch` command that runs `motab kd-train argv` on every GPU of this SLURM
    job's node (one such command per node), or None to train in this process: outside SLURM, with
    one GPU in all (or none that CUDA sees: `visible_gpus`), or inside a process a launcher already
    started (LOCAL_RANK set)."""
    if "LOCAL_RANK" in env:
        return None
    launch = torchrun_env(env, visible_gpus)
    nodes, per_node = int(launch.get("NNODES", "1")), int(launch.get("NPROC_PER_NODE", "1"))
    if nodes * per_node <= 1:
        return None
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_machines",
        str(nodes),
        "--machine_rank",
        launch["NODE_RANK"],
        "--main_process_ip",
        launch["MASTER_ADDR"],
        "--main_process_port",
        launch["MASTER_PORT"],
        "--num_processes",
        str(nodes * per_node),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "motab",
        "kd-train",
        *argv,
    ]
