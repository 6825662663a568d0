"""What a job asks SLURM for: partition, QOS, CPUs, memory and time, from its stage's config.

A stage's `resources` (studies.<s>.resources.<stage>, else the study's default) give gpus, runtime and
either a whole-job cpus_per_task / mem_mb or, for stages whose jobs take as many GPUs as their servers
need (a 4-GPU teacher eval beside 1-GPU student evals), cpus_per_gpu / mem_mb_per_gpu, multiplied by
the job's GPUs. The partition and QOS are the stage's own `partition` / `qos`, else config's `slurm`
block by kind: jobs with GPUs go to slurm.gpu, CPU-only jobs to slurm.cpu (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Mapping


def _stage_value(resources: Mapping, stage: str, key: str):
    own = resources.get(stage, {})
    return own[key] if key in own else resources["default"].get(key)


def job_resources(resources: Mapping, slurm: Mapping, stage: str, gpus: int) -> dict:
    """{gpu, cpus_per_task, mem_mb, runtime[, slurm_partition][, qos]} of one job of `stage` on `gpus` GPUs."""
    per_gpu_cpus = _stage_value(resources, stage, "cpus_per_gpu")
    per_gpu_mem = _stage_value(resources, stage, "mem_mb_per_gpu")
    out = {
        "gpu": gpus,
        "cpus_per_task": per_gpu_cpus * gpus
        if per_gpu_cpus and gpus
        else _stage_value(resources, stage, "cpus_per_task"),
        "mem_mb": per_gpu_mem * gpus if per_gpu_mem and gpus else _stage_value(resources, stage, "mem_mb"),
        "runtime": _stage_value(resources, stage, "runtime"),
    }
    kind = slurm.get("gpu" if gpus else "cpu", {})
    partition = resources.get(stage, {}).get("partition") or kind.get("partition")
    qos = resources.get(stage, {}).get("qos") or kind.get("qos")
    if partition:
        out["slurm_partition"] = partition
    if qos:
        out["qos"] = qos
    return out
