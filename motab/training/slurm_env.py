"""torchrun's environment for LLaMA-Factory, derived from a SLURM job's environment.

`llamafactory-cli train` launches torchrun itself when FORCE_TORCHRUN=1 (or when more than one GPU
is visible) and reads NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT and NPROC_PER_NODE from the
environment. In a SLURM job, one `motab sft` per node (started with `srun --ntasks-per-node=1`) sees:

    SLURM_JOB_ID        -> MASTER_PORT = 20000 + job id mod 10000 (the same on every node, below
                           the Linux ephemeral range 32768+, so two jobs on a node rarely collide)
    SLURM_NNODES        -> NNODES
    SLURM_NODEID        -> NODE_RANK (0 .. NNODES-1)
    SLURM_JOB_NODELIST  -> MASTER_ADDR = the first host of the expanded list (what
                           `scontrol show hostnames` prints first), e.g. "gpu[003-004,010]" -> gpu003
    SLURM_GPUS_ON_NODE  -> NPROC_PER_NODE: one process per GPU the job has on the node, capped by the
                           GPUs this process can see (a CPU-only job, or one whose GPUs CUDA cannot
                           see, is one process per node, never 0)
and FORCE_TORCHRUN=1. One process in all (one node, at most one GPU) needs no torchrun and derives
nothing, as outside SLURM (no SLURM_JOB_ID): LLaMA-Factory then trains in its own process.
Values already set in the environment by the user win over derived ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PORT_BASE, PORT_SPAN = 20000, 10000
DERIVED = ("FORCE_TORCHRUN", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE")


def expand_hostlist(hostlist: str) -> list[str]:
    """SLURM's compressed host list -> host names, in order (as `scontrol show hostnames` prints them).

    Handles comma-separated entries, bracketed ranges with zero padding ("n[01-03,07]"), several
    bracket groups in one name ("r[1-2]n[1-2]") and plain names ("login1,gpu-a").
    """
    entries, depth, current = [], 0, ""
    for char in hostlist.strip():
        if char == "," and depth == 0:
            entries.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f"SLURM host list {hostlist!r}: unbalanced or nested brackets")
        current += char
    if depth != 0:
        raise ValueError(f"SLURM host list {hostlist!r}: unclosed bracket")
    entries.append(current)
    hosts = []
    for entry in entries:
        if not entry:
            raise ValueError(f"SLURM host list {hostlist!r}: empty entry")
        hosts.extend(_expand_entry(entry, hostlist))
    return hosts


def _expand_entry(entry: str, hostlist: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", entry)
    if match is None:
        return [entry]
    head, tail = entry[: match.start()], entry[match.end() :]
    out = []
    for part in match.group(1).split(","):
        bounds = part.split("-")
        if len(bounds) == 1 and bounds[0].isdigit():
            numbers = [bounds[0]]
        elif len(bounds) == 2 and all(b.isdigit() for b in bounds) and int(bounds[0]) <= int(bounds[1]):
            width = len(bounds[0])
            numbers = [str(i).zfill(width) for i in range(int(bounds[0]), int(bounds[1]) + 1)]
        else:
            raise ValueError(f"SLURM host list {hostlist!r}: bad range {part!r}")
        out.extend(host for number in numbers for host in _expand_entry(head + number + tail, hostlist))
    return out


def _int(env: Mapping[str, str], name: str) -> int:
    value = env.get(name)
    if value is None or not value.strip().isdigit():
        raise ValueError(f"SLURM environment: {name} should be a non-negative integer, found {value!r}")
    return int(value)


def processes_per_node(env: Mapping[str, str], visible_gpus: int | None = None) -> int:
    """Training processes per node: the job's GPUs on this node (SLURM_GPUS_ON_NODE, else the visible
    ones), capped by `visible_gpus` when it is known, and at least 1 (a CPU-only job)."""
    gpus = _int(env, "SLURM_GPUS_ON_NODE") if env.get("SLURM_GPUS_ON_NODE", "").strip() else (visible_gpus or 0)
    if visible_gpus is not None:
        gpus = min(gpus, visible_gpus)
    return max(1, gpus)


def torchrun_env(env: Mapping[str, str], visible_gpus: int | None = None) -> dict[str, str]:
    """The torchrun variables to add to `env` for LLaMA-Factory: empty outside a SLURM job and for a
    job of one process in all. `visible_gpus` is what CUDA sees here (torch.cuda.device_count()),
    None when unknown (then SLURM_GPUS_ON_NODE is trusted)."""
    if "SLURM_JOB_ID" not in env:
        return {}
    nodes, rank = _int(env, "SLURM_NNODES"), _int(env, "SLURM_NODEID")
    if not 0 <= rank < nodes:
        raise ValueError(f"SLURM environment: SLURM_NODEID {rank} outside 0..{nodes - 1} (SLURM_NNODES {nodes})")
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise ValueError("SLURM environment: SLURM_JOB_NODELIST is missing")
    hosts = expand_hostlist(nodelist)
    if len(hosts) != nodes:
        raise ValueError(
            f"SLURM environment: SLURM_JOB_NODELIST {nodelist!r} names {len(hosts)} hosts, SLURM_NNODES says {nodes}"
        )
    per_node = processes_per_node(env, visible_gpus)
    if nodes == 1 and per_node == 1:
        return {}
    derived = {
        "FORCE_TORCHRUN": "1",
        "NNODES": str(nodes),
        "NODE_RANK": str(rank),
        "MASTER_ADDR": hosts[0],
        "MASTER_PORT": str(PORT_BASE + _int(env, "SLURM_JOB_ID") % PORT_SPAN),
        "NPROC_PER_NODE": str(per_node),
    }
    return {key: env.get(key, value) for key, value in derived.items()}
