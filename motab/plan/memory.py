"""Plan-time GPU memory fit: each GPU job's memory per GPU against the GPU the study declares.

A study with `resources.gpu_memory_gb` gets, before any job runs, one estimate per GPU job (the
weights, and for what is trained its gradients and optimizer state) from the catalogue's parameter
counts (`models.<name>.params_b`, billions). What is counted, per GPU:

- sft (LLaMA-Factory): bf16 weights and gradients (2 + 2 bytes a parameter) and Adam's fp32 master
  weights and two moments (12 bytes) for full fine-tuning, the frozen weights alone for LoRA; all
  divided by the job's GPUs under DeepSpeed ZeRO-3 (a `deepspeed` config named *z3*), the optimizer
  and gradients alone under ZeRO-2, nothing divided without DeepSpeed.
- kd, built-in trainer: every process holds the student in `dtype` (full weights: plus gradients
  and torch AdamW's two moments in that dtype; LoRA: the weights alone) and every in-process teacher
  in `dtype`; with teacher_server the teacher runs on its own GPUs of the job (a server, below) and
  the training processes on the rest.
- kd, KDFlow: the student sharded by FSDP over all GPUs (16 bytes a parameter, as sft) beside the
  teacher's bf16 weights split over teacher_tp_size.
- servers (synthesis, evaluation, a KD teacher): bf16 weights over the server's tp must fit in the
  static memory SGLang takes (--mem-fraction-static of the GPU, placement.SGLANG_MEM_TOTAL), which
  also holds the KV cache.

Activations, the KV cache and CUDA's own memory are not counted: an estimate that fits may still
run out with long sequences, one that does not fit cannot run. docs/kd.md says how to read the table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from motab.plan.servers import server_parallel, stage_placement
from motab.plan.study import SELF, Study
from motab.serving.placement import SGLANG_MEM_TOTAL, PlacementError
from motab.training.kd.objectives import LOSSES

GB = 1e9
DTYPE_BYTES = {"float32": 4, "bfloat16": 2}
BF16 = 2  # servers and LLaMA-Factory (bf16: true) hold the weights in bf16
ADAM_MIXED = 12  # fp32 master weights + two fp32 moments (DeepSpeed / FSDP mixed precision)
KDFLOW_DEFAULT_TEACHER_TP = 1  # motab.training.kdflow's default, as run_onpolicy_kd.sh


class FitError(ValueError):
    """A hub model a GPU job uses has no parameter count; names the catalogue key."""


@dataclass(frozen=True)
class Fit:
    """One GPU job's estimate: `estimate_gb` per GPU against `limit_gb` (its share of the GPU)."""

    study: str
    job: str  # e.g. "kd sft_teacher_only_kd_rkl"
    gpus: int
    estimate_gb: float
    limit_gb: float
    key: str  # the config key to change when it does not fit
    parts: str  # what the estimate is made of

    @property
    def fits(self) -> bool:
        return self.estimate_gb <= self.limit_gb

    def error(self) -> str:
        """One line: the key to change (first, so the message names its file and line), the job, the
        estimate and the limit."""
        return (
            f"{self.key}: {self.job} needs about {self.estimate_gb:.1f} GB per GPU ({self.parts}), over its "
            f"{self.limit_gb:.1f} GB of studies.{self.study}.resources.gpu_memory_gb; change {self.key}"
        )


def params_b(study: Study, model: str) -> float:
    entry = study.models.get(model, {})
    if "params_b" not in entry:
        raise FitError(
            f"models.{model}.params_b: the parameter count (billions) is needed by the memory check of "
            f"studies.{study.name} (resources.gpu_memory_gb)"
        )
    return float(entry["params_b"])


def gb(params: float, bytes_per_param: float) -> float:
    """Billions of parameters x bytes each, in GB."""
    return params * bytes_per_param


def server_fit(study: Study, job: str, model: str, stage: str, role: str, fraction: float | None = None) -> Fit:
    """A server's bf16 weights per GPU against the static memory SGLang takes of each of its GPUs."""
    par = server_parallel(study, model, stage, role)
    limit = study.cfg["resources"]["gpu_memory_gb"] * (fraction or SGLANG_MEM_TOTAL)
    where = f"studies.{study.name}.resources.{stage}.servers.{role}.tp"
    return Fit(
        study.name,
        job,
        par["tp"] * par["dp"],
        gb(params_b(study, model), BF16) / par["tp"],
        limit,
        f"models.{model}.tp" if role not in study.cfg["resources"].get(stage, {}).get("servers", {}) else where,
        f"{model} bf16 weights / tp {par['tp']}, in --mem-fraction-static {fraction or SGLANG_MEM_TOTAL}",
    )


def sft_fit(study: Study, run: str) -> Fit:
    cfg = study.sft_cfg(run)
    model = study.run_model_name(run)
    p, gpus = params_b(study, model), study.resource("sft", "gpus")
    ds = str(cfg.get("deepspeed") or "")
    weights = gb(p, BF16)
    trained = 0.0 if cfg.get("finetuning_type", "lora") != "full" else gb(p, BF16 + ADAM_MIXED)
    if "z3" in ds:
        weights, trained = weights / gpus, trained / gpus
    elif "z2" in ds:
        trained /= gpus
    zero = "ZeRO-3" if "z3" in ds else "ZeRO-2" if "z2" in ds else "no DeepSpeed"
    what = "weights + grads + Adam" if trained else "frozen weights (LoRA)"
    return Fit(
        study.name,
        f"sft {run}",
        gpus,
        weights + trained,
        study.cfg["resources"]["gpu_memory_gb"],
        f"studies.{study.name}.sft.deepspeed" if "z3" not in ds else f"studies.{study.name}.resources.sft.gpus",
        f"{model} {p:g}B {what}, {zero} over {gpus} GPUs",
    )


def kd_fits(study: Study, run: str) -> list[Fit]:
    """The training GPUs of a KD run, and its teacher server's where it has one."""
    cfg, name = study.kd_cfg(run), study.run(run).spec["kd"]
    student = study.run_model_name(run)
    teachers = sorted({t for t, _, _ in study.kd_sources(run)})
    limit, gpus = study.cfg["resources"]["gpu_memory_gb"], study.resource("kd", "gpus")
    p_s = params_b(study, student)
    block = f"studies.{study.name}.kd.{name}"
    if cfg.get("engine") == "kdflow":
        tp = cfg.get("teacher_tp_size", KDFLOW_DEFAULT_TEACHER_TP)
        teacher = sum(gb(params_b(study, t), BF16) / tp for t in teachers if t != SELF)
        return [
            Fit(
                study.name,
                f"kd {run} (KDFlow)",
                gpus,
                gb(p_s, BF16 + ADAM_MIXED) / gpus + teacher,
                limit,
                f"{block}.teacher_tp_size",
                f"{student} {p_s:g}B FSDP over {gpus} GPUs + teacher bf16 / tp {tp}",
            )
        ]
    dtype = cfg.get("dtype", "float32")
    b = DTYPE_BYTES[dtype]
    student_gb = gb(p_s, b if cfg.get("lora_rank") else 4 * b)  # weights (+ grads + 2 AdamW moments)
    in_process = [t for t in teachers if t != SELF and not cfg.get("teacher_server")]
    teacher_gb = sum(gb(params_b(study, t), b) for t in in_process)
    if SELF in teachers and not cfg.get("lora_rank"):
        teacher_gb += gb(p_s, b)  # a frozen copy of the starting student
    on_server = cfg.get("teacher_server", False)
    server = [server_fit(study, f"kd {run} teacher server", teachers[0], "kd", "teacher")] if on_server else []
    trainer_gpus = gpus - sum(f.gpus for f in server) if gpus else 0
    key = f"{block}.lora_rank"  # what is left: train LoRA adapters instead of every weight
    if dtype == "float32":
        key = f"{block}.dtype"
    elif in_process:  # behind a server where the loss allows it, else on KDFlow
        key = f"{block}.teacher_server" if LOSSES[cfg["loss"]].sampled_tokens_only else f"{block}.engine"
    trained = "LoRA weights" if cfg.get("lora_rank") else "weights + grads + AdamW"
    teachers_text = f" + teacher {', '.join(in_process)} in-process" if in_process else ""
    return [
        Fit(
            study.name,
            f"kd {run}",
            trainer_gpus,
            student_gb + teacher_gb,
            limit,
            key,
            f"{student} {p_s:g}B {dtype} {trained}{teachers_text}, on each of {trainer_gpus} GPUs",
        ),
        *server,
    ]


def study_fits(study: Study) -> list[Fit]:
    """Every GPU job's estimate, in run order then synthesis order (none without gpu_memory_gb)."""
    if "gpu_memory_gb" not in study.cfg["resources"]:
        return []
    fits = []
    for run in study.runs.values():
        if run.kind == "sft" and study.resource("sft", "gpus"):
            fits.append(sft_fit(study, run.name))
        elif run.kind == "kd" and study.resource("kd", "gpus"):
            fits += kd_fits(study, run.name)
        if study.resource("eval_generate", "gpus") and run.kind != "epoch":
            fits.append(server_fit(study, f"eval {run.name}", study.run_model_name(run.name), "eval_generate", "model"))
    if study.resource("synth", "gpus"):
        for method in study.cfg.get("synth", {}):
            servers = list(zip(("teacher", "student"), study.synth_models(method)))
            placements, _ = stage_placement(study, "synth", servers)  # share_gpus: each its slice
            for (role, model), placement in zip(servers, placements):
                job = f"synth {method} {role} server"
                fits.append(server_fit(study, job, model, "synth", role, placement.mem_fraction))
    return fits


def memory_errors(config: Mapping) -> list[str]:
    """One line per GPU job that does not fit (or per missing parameter count), for `snakemake -n`."""
    errors = []
    for name in config["studies"]:
        try:
            errors += [fit.error() for fit in study_fits(Study.of(config, name)) if not fit.fits]
        except (FitError, PlacementError) as exc:
            errors.append(str(exc))
    return errors


def fit_table(fits: list[Fit]) -> str:
    """The estimates as a TSV (rounded to 0.1 GB), in the order given."""
    lines = ["study\tjob\tgpus\testimate_gb_per_gpu\tlimit_gb\tfits\tmade_of"]
    for f in fits:
        lines.append(
            f"{f.study}\t{f.job}\t{f.gpus}\t{math.ceil(f.estimate_gb * 10) / 10:.1f}\t{f.limit_gb:.1f}\t"
            f"{'yes' if f.fits else 'NO'}\t{f.parts}"
        )
    return "\n".join(lines) + "\n"


def fits_json(fits: list[Fit]) -> str:
    """The estimates as JSON (rule gpu_memory's params: a change reruns it; `motab plan-memory --fits-json`)."""
    return json.dumps([asdict(f) for f in fits], sort_keys=True, separators=(",", ":"))
