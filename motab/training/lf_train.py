"""`python -m motab.training.lf_train CONFIG.yaml`: LLaMA-Factory's `llamafactory-cli train
CONFIG.yaml`, plus saving when a job is about to be stopped.

The training is LLaMA-Factory's own (its `run_exp` on the same YAML, which still reruns by hand with
`llamafactory-cli train`); one Trainer callback is added. On SIGTERM or SIGUSR1 (stop_signals.py)
the trainer saves a full checkpoint-N at the end of the current step and the process stops; with
MOTAB_SAVE_MINUTES=M in the environment it also saves one every M minutes, so a SIGKILL loses at
most M minutes (with `save_strategy: epoch` those extra saves are pruned as the next one lands;
the epoch checkpoints stay). Every process decides together (one all-reduce per step).

Several processes (FORCE_TORCHRUN, or more than one GPU): this command starts torchrun on itself,
with the node layout LLaMA-Factory's launcher reads (NNODES, NODE_RANK, NPROC_PER_NODE,
MASTER_ADDR, MASTER_PORT), as a child that dies with it (motab.children).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from motab.children import run_child
from motab.training.stop_signals import StopRequest, stopped

SAVE_MINUTES = "MOTAB_SAVE_MINUTES"
MODULE = "motab.training.lf_train"  # what torchrun runs (under `python -m`, __name__ is "__main__")


def torchrun_command(config: str, env: dict[str, str]) -> list[str] | None:
    """The torchrun command LLaMA-Factory's launcher would run for CONFIG, or None for one process
    (inside a worker torchrun started, LOCAL_RANK is set)."""
    from llamafactory.extras.misc import find_available_port, get_device_count, is_env_enabled, use_kt, use_ray

    if "LOCAL_RANK" in env:
        return None
    if not (is_env_enabled("FORCE_TORCHRUN") or (get_device_count() > 1 and not use_ray() and not use_kt())):
        return None
    return [
        str(Path(sys.executable).with_name("torchrun")),
        "--nnodes",
        env.get("NNODES", "1"),
        "--node_rank",
        env.get("NODE_RANK", "0"),
        "--nproc_per_node",
        env.get("NPROC_PER_NODE", str(get_device_count())),
        "--master_addr",
        env.get("MASTER_ADDR", "127.0.0.1"),
        "--master_port",
        env.get("MASTER_PORT", str(find_available_port())),
        "-m",
        MODULE,
        config,
    ]


def save_on_stop(stop: StopRequest, every_s: float):
    """The Trainer callback (built here: transformers loads only in the training process)."""
    import torch
    from transformers import TrainerCallback

    class SaveOnStop(TrainerCallback):
        def __init__(self) -> None:
            self.last, self.stopping = time.monotonic(), False

        def on_step_end(self, args, state, control, **kwargs):
            flags = torch.tensor(
                [float(stop.requested), float(every_s > 0 and time.monotonic() - self.last >= every_s)],
                device=args.device,
            )
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)  # the same choice everywhere
            self.stopping = bool(flags[0])
            if self.stopping or flags[1]:
                control.should_save = True
            return control

        def on_save(self, args, state, control, **kwargs):
            self.last = time.monotonic()
            if state.is_world_process_zero and args.save_strategy == "epoch":
                prune_between_epochs(Path(args.output_dir), state.global_step)
            if self.stopping:
                raise stopped(stop.name, str(Path(args.output_dir) / f"checkpoint-{state.global_step}"))
            return control

    return SaveOnStop()


def prune_between_epochs(folder: Path, newest: int) -> None:
    """Remove the checkpoints older than checkpoint-<newest> that are not an epoch's end (time and
    signal saves: only the newest one serves a resume)."""
    for checkpoint in folder.glob("checkpoint-*"):
        step = checkpoint.name.split("-", 1)[1]
        state = checkpoint / "trainer_state.json"
        if not step.isdigit() or int(step) >= newest or not state.is_file():
            continue
        epoch = json.loads(state.read_text())["epoch"]
        if abs(epoch - round(epoch)) > 1e-3:
            shutil.rmtree(checkpoint)


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if (command := torchrun_command(argv[0], env)) is not None:
        if env.get("OPTIM_TORCH", "1").lower() in ("true", "y", "1"):  # as LLaMA-Factory's launcher
            env |= {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "TORCH_NCCL_AVOID_RECORD_STREAMS": "1"}
        print("launching:", " ".join(command), flush=True)
        code, received = run_child(command, env)
        if received is not None:
            raise SystemExit(f"stopped by a signal; torchrun exited with code {code}")
        return code
    stop = StopRequest()
    from llamafactory.train.tuner import run_exp

    sys.argv = [sys.argv[0], *argv]  # LLaMA-Factory reads its YAML from the command line
    run_exp(callbacks=[save_on_stop(stop, 60 * float(env.get(SAVE_MINUTES) or 0))])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
