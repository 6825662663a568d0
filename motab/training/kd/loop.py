"""The built-in KD trainer's loop: set up, then per step sample, score, step the optimizer and log;
resumable state every save_steps and on SIGTERM / SIGUSR1 (then it stops); the finished checkpoint written atomically with training_log.csv,
kd_config.json (the resolved KDConfig, readable by `motab kd-train --config`) and kd_run.json."""

from __future__ import annotations

import contextlib
import csv
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from motab.provenance import provenance
from motab.resume_contract import model_fingerprint, optional_sha256, read_key, refuse_if_changed, write_key
from motab.tracking import Tracker
from motab.training.kd.checkpoint import (
    atomic_save,
    atomic_state_dict,
    latest_training_state,
    load_training_state,
    save_training_state,
)
from motab.training.kd.config import KDConfig, RunOptions
from motab.training.kd.models import load_models, make_optimizer
from motab.training.kd.processes import Processes, current_processes
from motab.training.kd.progress import Progress
from motab.training.kd.prompts import (
    PromptSource,
    check_shares,
    cut_prompts,
    prompt_sources,
)
from motab.training.kd.step import accumulate_gradients, sample_step
from motab.training.stop_signals import StopRequest, stopped

LOG_COLUMNS = ("step", "loss", "kl_to_teacher", "rollout_tokens")  # training_log.csv in the checkpoint
LOG_FILE = "training_log.csv"
CONFIG_FILE = "kd_config.json"  # the resolved KDConfig
CSV_COLUMNS = (*LOG_COLUMNS, "seconds")  # --log-csv (progress)
# runtime options that may change between a run and its resumption without changing the result
RESUME_FREE = (
    "threads",
    "save_steps",
    "log_csv",
    "output",
    "gradient_checkpointing",
    "tracking",
    "tracking_dir",
    "tracking_project",
)

FINGERPRINTS = ("student_files", "teacher_files", "prompts_sha256")  # of the resume key (resume_key)


def run_config(config: KDConfig, options: RunOptions) -> dict:
    """Every setting of the run, flat and sorted (kd_run.json's "args"): the config and the runtime options."""
    # a teacher server's URL (a free port) is where the teacher runs, not what the run computes
    runtime = {k: v for k, v in asdict(options).items() if k not in ("params", "teacher_urls")}
    return dict(sorted((config.as_dict() | runtime).items()))


@dataclass
class Trainer:
    """What the loop works on: models, prompts, optimizer, and this process's place among the processes."""

    config: KDConfig
    options: RunOptions
    processes: Processes
    sources: list[PromptSource]
    student: torch.nn.Module
    teachers: list
    tokenizer: object
    trainable: list
    optimizer: torch.optim.Optimizer

    @property
    def partial(self) -> Path:
        return Path(str(Path(self.options.output)) + ".partial")

    @property
    def per_teacher(self) -> list[str]:
        n = len(self.sources)
        return [f"kl_to_teacher_{i}" for i in range(1, n + 1)] if n > 1 else []


def set_up(config: KDConfig, options: RunOptions) -> Trainer:
    """Seeds, prompts, models and optimizer, in the order that fixes the run's random draws."""
    processes = current_processes()
    torch.set_num_threads(options.threads)
    torch.manual_seed(config.seed + processes.rank)  # each process samples its own rollouts
    sources = prompt_sources(config, options)
    check_shares(sources, processes)
    student, teachers, tokenizer = load_models(config, options, processes.device)
    cut_prompts(sources, tokenizer, config.max_prompt_tokens)
    trainable = [q for q in student.parameters() if q.requires_grad]
    processes.broadcast(trainable)
    processes.check_replicas(student.parameters(), "after loading")
    optimizer = make_optimizer(trainable, config)
    return Trainer(config, options, processes, sources, student, teachers, tokenizer, trainable, optimizer)


def resume_key(config: KDConfig, options: RunOptions, world: int) -> dict:
    """Everything that decides the saved state's bytes: the settings, the number of processes, and
    fingerprints of the student's and teachers' files and of the prompt files (motab.resume_contract)."""
    settings = {k: v for k, v in run_config(config, options).items() if k not in RESUME_FREE}
    return settings | {
        "processes": world,
        FINGERPRINTS[0]: model_fingerprint(options.student),
        FINGERPRINTS[1]: [model_fingerprint(teacher) for teacher in options.teachers],
        FINGERPRINTS[2]: [optional_sha256(prompts) for prompts in options.prompts],
    }


def resume(t: Trainer, key: dict) -> tuple[list[dict], int]:
    """(logged rows, first step): the newest saved state's, or a fresh start. Saved state made with
    another key stops the run (SystemExit naming what changed and the folder to remove)."""
    latest = latest_training_state(t.partial)
    saved = [latest.name] if latest else []
    saved += sorted(p.name for p in t.partial.glob("eval-step-*")) if t.partial.is_dir() else []
    if saved:
        refuse_if_changed(read_key(t.partial), key, t.partial, f"its saved state ({', '.join(saved)})")
    if t.processes.main:
        write_key(t.partial, key)  # before any state is saved, so saved state never lacks its key
    if latest is None:
        return [], 1
    state = load_training_state(latest, t.student, t.optimizer)
    torch.set_rng_state(state["rng"][t.processes.rank])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"][t.processes.rank], t.processes.device)
    if t.processes.main:
        print(f"resuming from {latest}")
    return state["rows"], state["step"] + 1


def train_step(t: Trainer, step: int) -> dict:
    """One optimizer step; its logged row (values formatted once, as the logs write them)."""
    start = time.perf_counter()
    micro = sample_step(t.student, t.sources, t.tokenizer, t.config, step, t.processes)
    t.optimizer.zero_grad(set_to_none=True)
    for group in t.optimizer.param_groups:
        group["lr"] = learning_rate(t.config, step)
    metrics, kls = accumulate_gradients(t.student, t.teachers, micro, t.config, t.processes, step)
    t.processes.sum_gradients(t.trainable)
    if t.config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(t.trainable, t.config.grad_clip)
    t.optimizer.step()
    row = {
        "step": step,
        "loss": f"{metrics['loss']:.6f}",
        "kl_to_teacher": f"{metrics['kl_to_teacher']:.6f}",
        "rollout_tokens": f"{metrics['rollout_tokens']:.3f}",
        "seconds": f"{time.perf_counter() - start:.3f}",
    }
    row.update({column: f"{kl:.6f}" for column, kl in zip(t.per_teacher, kls)})
    return row


def save_state(t: Trainer, step: int, rows: list[dict], now: bool = False) -> None:
    """The eval step's weights and the resumable state, where this step is one of theirs (or `now`)."""
    config, processes = t.config, t.processes
    if step == config.eval_step < config.steps and processes.main:
        atomic_state_dict(t.student, t.partial / f"eval-step-{step}")
    if (now or (config.save_steps and step % config.save_steps == 0)) and step < config.steps:
        rng = processes.gather(torch.get_rng_state())
        cuda_rng = processes.gather(torch.cuda.get_rng_state(processes.device)) if torch.cuda.is_available() else None
        if processes.main:
            save_training_state(
                t.partial,
                step,
                t.student,
                t.optimizer,
                {"rng": rng, "cuda_rng": cuda_rng, "rows": rows},
            )


def train(config: KDConfig, options: RunOptions) -> dict:
    """Run the whole training; returns the kd_run.json record. With several processes (processes.py)
    each runs this: all train, the main one logs and writes."""
    stop = StopRequest()  # before the slow set-up, so a signal during it stops after step one
    t = set_up(config, options)
    key = resume_key(config, options, t.processes.world)
    rows, first_step = resume(t, key)
    progress = None
    if options.log_csv and t.processes.main:
        Path(options.log_csv).parent.mkdir(parents=True, exist_ok=True)
        progress = open(options.log_csv, "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    tracker = Tracker(
        options.tracking if t.processes.main else None,
        options.tracking_dir,
        Path(options.output).name,
        options.tracking_project,
    )
    with progress if progress is not None else contextlib.nullcontext():
        writer = None if progress is None else csv.DictWriter(progress, fieldnames=[*CSV_COLUMNS, *t.per_teacher])
        if writer is not None:
            writer.writeheader()
            writer.writerows(rows)
            progress.flush()
        progress_lines = Progress(
            config.steps,
            sum(options.prompts_per_step) * config.samples_per_prompt,
            first_step,
            config.loss,
            len(t.sources),
        )
        if t.processes.main:
            print(progress_lines.header(), flush=True)
        for step in range(first_step, config.steps + 1):
            row = train_step(t, step)
            rows.append(row)
            tracker.log(step, row)
            if t.processes.main:
                print(progress_lines.line(row), flush=True)
            if writer is not None:
                writer.writerow(row)
                progress.flush()
            stopping = step < config.steps and t.processes.sum([float(stop.requested)])[0] > 0
            save_state(t, step, rows, now=stopping)
            if stopping:  # SIGTERM / SIGUSR1: the state is saved, the rerun resumes from it
                raise stopped(stop.name, str(t.partial / f"step-{step}"))
    tracker.close()
    t.processes.check_replicas(t.student.parameters(), f"after step {config.steps}")
    return finish(t, rows, key)


def finish(t: Trainer, rows: list[dict], key: dict) -> dict:
    """The kd_run.json record; the main process writes the checkpoint (the eval step's weights, LoRA merged)."""
    config, options = t.config, t.options
    evaluated = config.eval_step or config.steps
    record = {
        "args": run_config(config, options),
        "params": options.params,
        "processes": t.processes.world,
        "provenance": provenance(options.params or {k: v for k, v in key.items() if k not in FINGERPRINTS}),
        "final": {
            "steps": config.steps,
            "loss": rows[-1]["loss"],
            "kl_to_teacher": rows[-1]["kl_to_teacher"],
            "checkpoint_step": evaluated,
        },
    }
    if t.per_teacher:
        record["final"]["kl_to_teacher_by_teacher"] = [rows[-1][column] for column in t.per_teacher]
    if not t.processes.main:
        return record
    student = t.student
    if evaluated < config.steps:
        student.load_state_dict(torch.load(t.partial / f"eval-step-{evaluated}" / "model.pt", weights_only=True))
    final = student.merge_and_unload() if config.lora_rank else student  # a plain HF checkpoint either way
    atomic_save(
        final,
        t.tokenizer,
        options.output,
        extra_json={"kd_run.json": record, CONFIG_FILE: config.as_dict()},
        extra_text={LOG_FILE: training_log(rows)},
    )
    if t.partial.exists():
        shutil.rmtree(t.partial)
    return record


def learning_rate(config: KDConfig, step: int) -> float:
    """The learning rate of 1-based `step`: constant, or linear from lr to 0 over the steps without warmup
    (transformers' default "linear" scheduler, which the PW-OPSD release's Trainer uses)."""
    if config.lr_schedule == "constant":
        return config.lr
    return config.lr * max(0.0, (config.steps - (step - 1)) / config.steps)


def training_log(rows: list[dict]) -> str:
    """training_log.csv: LOG_COLUMNS, one row per step, values as formatted when logged."""
    lines = [",".join(LOG_COLUMNS)] + [",".join(str(row[c]) for c in LOG_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"
