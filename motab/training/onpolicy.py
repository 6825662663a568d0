"""Built-in on-policy distillation trainer (`python -m motab kd-train`).

One loop, readable top to bottom. Each step:
  1. take the next B prompts (a fixed order shuffled by --seed, or with --prompt-order file the
     file's order as Tinker's PromptOnlyDataset; cycled), each user message cut to its first
     --max-prompt-tokens tokens (Tinker: 1,024; 0 = no cut), and render them with the student's chat
     template (add_generation_prompt=True);
  2. sample n rollouts per prompt from the current student in-process (model.generate, do_sample,
     --temperature, --top-p and --top-k (default: none), stop at tokenizer.eos_token_id; --student-thinking
     and --teacher-thinking set the chat template's enable_thinking); generate keeps no per-step
     [rollouts, |V|] scores: the sampler is the student, so rkl_onpolicy takes log p_sampler from
     the student's own training forward pass at --temperature;
  3. score the same tokens with the frozen teacher (eval, no_grad, same tokenizer). With
     `--teacher self` (on-policy self-distillation) the teacher is the starting student: a frozen
     copy, or with --lora-rank the same network with its LoRA adapters disabled; it scores the
     response after a privileged prompt holding the problem and the row's reference "solution"
     (OPSD's wording, `teacher_messages`; --prompt-style pwopsd: the PW-OPSD release's wording of
     both prompts, motab.training.selfdistill_prompts), while the student's prompt holds the problem only;
  4. minimise the chosen loss over the response tokens (prompt and padding masked; the eos the
     student produced is part of the response):
       rkl_onpolicy  Tinker's per-token reverse-KL advantage loss, k_t = log p_sampler(y_t) -
                     log p_T(y_t) (sampler: the student at the sampling temperature; teacher at 1),
                     optionally discounted (--kl-discount), times the importance ratio p_new / p_sampler
                     with p_new the learner's at temperature 1 (Tinker's forward pass); the ratio is 1
                     only when --temperature is 1. Truncated sampling (--top-p/--top-k) is refused;
       rkl|fkl|jsd|skl|srkl|akl
                     the full-vocabulary divergence at each response position of the student's own
                     rollouts (logits / --distill-temperature; --jsd-beta is the teacher's weight
                     in the mixture, --skew-lambda skl/srkl's lambda, --akl-mu akl's head mass; see
                     motab.losses.divergences), mean over tokens, computed in token chunks;
       opsd|eopd|pwopsd|reopold
                     the PW-OPSD release's objectives at --distill-temperature (--clip, --compat,
                     --w-min/--pw-tau/--pw-s, --reopold-lambda/--reopold-beta/--reopold-t-switch; see
                     motab.losses.selfdistill and METHODS.md, "Self-distillation losses");
  5. AdamW (weight decay 0, betas 0.9 / --adam-beta2), learning rate --lr-schedule (constant, or
     linear decay to 0 over --steps as transformers' default scheduler), gradient-norm clip
     --grad-clip (0 = none, as Tinker); one optimizer step per batch of rollouts (so sampling and
     training weights agree).
LoRA (--lora-rank r): adapters on every linear layer of the blocks (+ the unembedding lm_head with
--lora-unembed, as Tinker's train_unembed), scale --lora-alpha / r. With --lora-init sft_adapter the
student folder is a LoRA SFT output (motab sft): training continues its adapter (<student>/adapter,
on the base model named in its adapter_config.json) instead of a fresh one on the merged weights,
as Tinker's load_checkpoint_path (weights only, fresh optimizer).

Logged per step: step, loss, kl_to_teacher (mean over response tokens of log p_S(y_t) - log p_T(y_t)
at temperature 1, before the step's update), rollout_tokens (mean response tokens per rollout). The
finished checkpoint holds them as training_log.csv (those four columns, fixed formatting: the
file the report plots); --log-csv also writes them as training goes, with each step's seconds.
Deterministic for a fixed seed on CPU (same training_log.csv, same weights). --dtype bfloat16 loads
both models in bf16 (for GPUs; divergences are still computed in float32); runs on CUDA when available.
Several teachers (Tinker's multi-teacher on-policy distillation, one DistillationDatasetConfig per
teacher): repeat --teacher T --prompts P --prompts-per-step K once per teacher; the i-th of each flag
belong together. Each teacher has its own prompt order (its prompts shuffled by --seed, cycled); a
step's batch concatenates K_i prompts of every teacher in flag order, each rollout is scored by the
teacher of its prompt, and the loss is over the concatenated batch: each teacher's loss weighted by
its share of the batch's response tokens (of its sequences for pwopsd), which is the mean over all
tokens for every token-mean loss (reopold's entropy phase mask is chosen within each teacher's rows).
Each distinct teacher is loaded once; "self" may be one of them (its prompts need "solution"). The
progress CSV then has one kl_to_teacher_<i> column per teacher (1-based, flag order).
With --save-steps K, <output>.partial/step-N (weights, optimizer, RNG, logged rows) is written
every K steps and a rerun resumes from the newest; it is removed once the output is complete.
With --eval-step K < --steps, training runs all --steps (the log covers them) but the checkpoint
written to --output holds the weights after step K (PW-OPSD: 150 steps, step 100 evaluated); they
wait in <output>.partial/eval-step-K meanwhile, so a resumed run still finds them.
Several processes (one per GPU; `accelerate launch -m motab kd-train ...` or torchrun, and by itself
in a SLURM job with several GPUs, see processes.py): each takes an equal share of every teacher's
--prompts-per-step (a multiple of the process count), samples with seed --seed + rank, and the
gradients are summed so each step trains on the loss over the whole step's batch; the log's
metrics cover all processes. A resumed run needs the same number of processes.
Memory: --micro-batch-prompts K samples and back-propagates a process's prompts K at a time (each
micro-batch's loss weighted by its share of the step's loss units, so the accumulated gradient is
the whole batch's; with --loss-average micro_batch each micro-batch weighs the same, as transformers'
gradient accumulation); --gradient-checkpointing true recomputes the student's layers in backward.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import json
import os
import random
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from motab.jobenv import child_env, thread_env
from motab.jsonio import DataError, iter_jsonl, require
from motab.losses.divergences import (chunked_token_divergence, chunked_token_logprobs,
                                      onpolicy_advantage_loss)
from motab.losses.selfdistill import (COMPATS, PW_PRESETS, REOPOLD_BETA, REOPOLD_LAMBDA, REOPOLD_T_SWITCH,
                                      PositionSchedule)
from motab.losses.selfdistill_batch import SELF_DISTILL_LOSSES, SelfDistillSettings, selfdistill_loss
from motab.provenance import provenance
from motab.training.checkpoint import (atomic_save, atomic_state_dict, latest_training_state, load_training_state,
                                       save_training_state)
from motab.training.processes import Processes, accelerate_command, current_processes, default_device
from motab.tracking import Tracker
from motab.training.slurm_env import torchrun_env
from motab.training.selfdistill_prompts import pwopsd_student_messages, pwopsd_teacher_messages, render

DIVERGENCES = ("rkl", "fkl", "jsd", "skl", "srkl", "akl")
LOSSES = ("rkl_onpolicy", *DIVERGENCES, *SELF_DISTILL_LOSSES)
PROMPT_STYLES = ("opsd", "pwopsd")
SELF = "self"   # --teacher value: self-distillation from the starting weights with privileged context
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # OPSD's script
UNEMBED = "lm_head"
LORA_INITS = ("fresh", "sft_adapter")
ADAPTER = "adapter"   # a LoRA SFT output's adapter folder (motab.training.sft)
# OPSD (github.com/siyan-zhao/OPSD, data_collator.py, reason_first=False): the teacher's user message
TRANSITION = ("\n\nAfter understanding the reference solution and the rationale behind each step, now articulate "
              "your own step-by-step reasoning that derives the same final answer to the problem below:\n")
BOXED = "Please reason step by step, and put your final answer within \\boxed{}."
LOG_COLUMNS = ("step", "loss", "kl_to_teacher", "rollout_tokens")   # training_log.csv in the checkpoint
LOG_FILE = "training_log.csv"
CSV_COLUMNS = (*LOG_COLUMNS, "seconds")                              # --log-csv (progress)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# arguments that may change between a run and its resumption without changing the result
RESUME_FREE = ("threads", "save_steps", "log_csv", "output", "gradient_checkpointing", "tracking", "tracking_dir",
               "tracking_project")


# ----------------------------------------------------------------------------- data

def read_prompts(path: str | Path, need_solution: bool = False, style: str = "opsd") -> list[list[dict]]:
    """KDFlow prompt rows {"id", "messages": [{"role", "content"}], ...} -> list of message lists.

    need_solution (self-distillation): every row needs a string "solution", and each conversation
    is returned as the teacher's privileged conversation, `teacher_messages(messages, solution)`,
    in a second list: (student conversations, teacher conversations). style "pwopsd": both sides
    worded as the PW-OPSD release (motab.training.selfdistill_prompts).
    """
    conversations, privileged = [], []
    for line, row in iter_jsonl(path):
        require(row, "id", (str, int), path, line)
        messages = require(row, "messages", list, path, line)
        if not messages:
            raise DataError(path, line, "messages", "expected at least one message, found an empty list")
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise DataError(path, line, f"messages[{i}]", f"expected an object, found {type(message).__name__}")
            require(message, "role", str, path, line)
            require(message, "content", str, path, line)
        conversations.append([{"role": m["role"], "content": m["content"]} for m in messages])
        if need_solution:
            solution = require(row, "solution", str, path, line, nullable=True)
            if solution is None:
                raise DataError(path, line, "solution", "self-distillation needs a reference solution, found null")
            privileged.append(teacher_messages(conversations[-1], solution) if style == "opsd"
                              else pwopsd_teacher_messages(conversations[-1], solution))
    if not conversations:
        raise DataError(path, None, None, "no prompts found")
    if style == "pwopsd":
        conversations = [pwopsd_student_messages(c) for c in conversations]
    return (conversations, privileged) if need_solution else conversations


def teacher_messages(messages: list[dict], solution: str) -> list[dict]:
    """The privileged teacher conversation: the last user turn rewritten as OPSD's teacher prompt.

    OPSD's wording, with {problem} = the student's user message (which in our prompt files may
    already carry an answer-format instruction): problem, "Here is a reference solution to this
    problem:", the solution, the transition sentence, then the boxed-answer instruction.
    """
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    content = (f"{messages[last]['content']}\n\nHere is a reference solution to this problem:\n{solution}\n"
               f"{TRANSITION}\n{BOXED}")
    return [*messages[:last], {"role": "user", "content": content}, *messages[last + 1:]]


def prompt_batch(order: list[int], step: int, batch: int) -> list[int]:
    """Indices of the prompts for 1-based `step`: the next `batch` of `order`, cycling."""
    start = (step - 1) * batch
    return [order[(start + i) % len(order)] for i in range(batch)]


@dataclass
class PromptSource:
    """One teacher with its own prompts (Tinker's DistillationDatasetConfig): per_step prompts a step."""

    teacher: str                           # checkpoint folder, or SELF
    prompts: str                           # prompt JSONL
    per_step: int
    conversations: list[list[dict]]        # the student's conversations
    privileged: list[list[dict]] | None    # the teacher's (self-distillation), else None
    order: list[int]                       # the prompts shuffled by --seed; steps take the next per_step


def prompt_sources(args: argparse.Namespace) -> list[PromptSource]:
    """The (teacher, prompts, prompts per step) triples of the command line, with their prompts read,
    in --prompt-order (shuffled by --seed, or the file's)."""
    sources = []
    for teacher, path, per_step in zip(args.teacher, args.prompts, args.prompts_per_step):
        if teacher == SELF:
            conversations, privileged = read_prompts(path, need_solution=True, style=args.prompt_style)
        else:
            conversations, privileged = read_prompts(path), None
        order = list(range(len(conversations)))
        if args.prompt_order == "shuffled":
            random.Random(args.seed).shuffle(order)
        sources.append(PromptSource(teacher, path, per_step, conversations, privileged, order))
    return sources


def cut_prompt(tokenizer, text: str, max_tokens: int) -> str:
    """The text's first max_tokens tokens, decoded (Tinker's PromptOnlyDataset._truncate_prompt); 0 = all."""
    tokens = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(tokens[:max_tokens]) if 0 < max_tokens < len(tokens) else text


def cut_prompts(sources: list[PromptSource], tokenizer, max_tokens: int) -> None:
    """Cut every user message of the student's conversations to max_tokens tokens (in place)."""
    for source in sources if max_tokens else []:
        for conversation in source.conversations:
            for message in conversation:
                if message["role"] == "user":
                    message["content"] = cut_prompt(tokenizer, message["content"], max_tokens)


def source_batches(sources: list[PromptSource], step: int) -> list[list[int]]:
    """Each source's prompt indices for 1-based `step` (the batch concatenates them in this order)."""
    return [prompt_batch(source.order, step, source.per_step) for source in sources]


# ----------------------------------------------------------------------------- rollouts

@dataclass
class Rollouts:
    """R = B*n sequences: [left-padded prompt (P) | response (M, right-padded after eos)]."""

    input_ids: torch.Tensor        # [R, P+M]
    attention_mask: torch.Tensor   # [R, P+M]
    prompt_len: int                # P
    response: torch.Tensor         # [R, M]
    response_mask: torch.Tensor    # [R, M] bool: tokens up to and including the first eos

    @property
    def position_ids(self) -> torch.Tensor:
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def sample_rollouts(model, tokenizer, conversations: list[list[dict]], n: int, max_new_tokens: int,
                    temperature: float, top_p: float = 1.0, top_k: int = 0, thinking: bool | None = None,
                    mask_pad: bool = False) -> Rollouts:
    """n sampled responses per conversation (mask_pad: see `response_mask`).

    generate keeps no scores (one [R, |V|] tensor per new token would be R * M * |V| * 4 bytes). The
    sampler is the current student, so the log-probabilities rkl_onpolicy needs are the student's own
    at the sampling temperature, taken from the training forward pass (distillation_loss).
    """
    texts = [render(tokenizer, c, thinking) for c in conversations]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    prompt_ids = enc.input_ids.repeat_interleave(n, dim=0)
    prompt_mask = enc.attention_mask.repeat_interleave(n, dim=0)
    was_training = model.training
    model.eval()
    sequences = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True,
                               temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens,
                               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.train(was_training)
    prompt_len = prompt_ids.shape[1]
    response = sequences[:, prompt_len:]
    mask = response_mask(response, tokenizer.eos_token_id, tokenizer.pad_token_id if mask_pad else None)
    return Rollouts(input_ids=sequences, attention_mask=torch.cat([prompt_mask, mask.long()], 1),
                    prompt_len=prompt_len, response=response, response_mask=mask)


def response_mask(response: torch.Tensor, eos_id: int, pad_id: int | None = None) -> torch.Tensor:
    """[R, M] bool: the tokens up to and including the first eos; with pad_id, less every token equal to
    it (the PW-OPSD release masks labels equal to the pad token, which is the eos for some tokenizers)."""
    is_eos = response == eos_id
    mask = (is_eos.long().cumsum(-1) - is_eos.long()) == 0
    return mask if pad_id is None else mask & (response != pad_id)


def with_prompts(rollouts: Rollouts, tokenizer, conversations: list[list[dict]], n: int,
                 thinking: bool | None = None) -> Rollouts:
    """The same response tokens after other prompts (the teacher's privileged context), n per prompt."""
    texts = [render(tokenizer, c, thinking) for c in conversations]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(rollouts.response.device)
    prompt_ids = enc.input_ids.repeat_interleave(n, dim=0)
    prompt_mask = enc.attention_mask.repeat_interleave(n, dim=0)
    return Rollouts(input_ids=torch.cat([prompt_ids, rollouts.response], 1),
                    attention_mask=torch.cat([prompt_mask, rollouts.response_mask.long()], 1),
                    prompt_len=prompt_ids.shape[1], response=rollouts.response, response_mask=rollouts.response_mask)


def causal_lm(model):
    """The transformers causal LM inside a PEFT wrapper (LoRA layers stay injected), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def response_hidden(model, rollouts: Rollouts) -> torch.Tensor:
    """Final hidden states at the positions that predict each response token: [R, M, d]."""
    hidden = causal_lm(model).base_model(input_ids=rollouts.input_ids, attention_mask=rollouts.attention_mask,
                                         position_ids=rollouts.position_ids, use_cache=False).last_hidden_state
    return hidden[:, rollouts.prompt_len - 1:-1]


# ----------------------------------------------------------------------------- one step

def teacher_scoring(student, teacher):
    """Context for the teacher's forward pass: adapters off when the teacher is the LoRA student itself."""
    return student.disable_adapter() if teacher is student else contextlib.nullcontext()


def selfdistill_settings(args: argparse.Namespace) -> SelfDistillSettings:
    """The self-distillation losses' knobs from the command line."""
    return SelfDistillSettings(loss=args.loss, tau=args.distill_temperature, clip=args.clip, compat=args.compat,
                               schedule=PositionSchedule(w_min=args.w_min, tau=args.pw_tau, s=args.pw_s),
                               reopold_lambda=args.reopold_lambda, reopold_beta=args.reopold_beta,
                               reopold_t_switch=args.reopold_t_switch, chunk_tokens=args.chunk_tokens)


def distillation_loss(student, teacher, rollouts: Rollouts, args: argparse.Namespace,
                      teacher_rollouts: Rollouts | None = None, step: int = 1) -> tuple[torch.Tensor, float]:
    """(loss with grad, kl_to_teacher) for one batch of rollouts at 1-based `step`.

    teacher_rollouts: the same responses after the teacher's own prompts (self-distillation's
    privileged context); by default the teacher sees the student's prompts.
    """
    mask = rollouts.response_mask
    targets = rollouts.response[mask]
    student_head, teacher_head = causal_lm(student).lm_head, causal_lm(teacher).lm_head
    tau, chunk = args.distill_temperature, args.chunk_tokens
    with torch.no_grad(), teacher_scoring(student, teacher):
        teacher_hidden = response_hidden(teacher, rollouts if teacher_rollouts is None else teacher_rollouts)
        logp_teacher = chunked_token_logprobs(teacher_hidden[mask], teacher_head, targets, chunk_tokens=chunk)
    student_hidden = response_hidden(student, rollouts)
    with torch.no_grad():
        logp_student = chunked_token_logprobs(student_hidden.detach()[mask], student_head, targets, chunk_tokens=chunk)
    kl_to_teacher = (logp_student - logp_teacher).mean().item() if targets.numel() else 0.0
    as_grid = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)

    if args.loss == "rkl_onpolicy":
        # Tinker: the sampler's log-probs (this student at the sampling temperature, no gradient) give
        # k_t; the learner's forward pass is at temperature 1 and the importance ratio p_new / p_sampler
        # carries the gradient (exactly 1 at --temperature 1).
        if args.temperature == 1.0:
            logp_sampler = logp_student
        else:
            with torch.no_grad():
                logp_sampler = chunked_token_logprobs(student_hidden.detach()[mask], student_head, targets,
                                                      tau=args.temperature, chunk_tokens=chunk)
        logp_new = chunked_token_logprobs(student_hidden[mask], student_head, targets, chunk_tokens=chunk)
        loss = onpolicy_advantage_loss(as_grid.masked_scatter(mask, logp_new),
                                       as_grid.masked_scatter(mask, logp_sampler),
                                       as_grid.masked_scatter(mask, logp_teacher), mask, args.kl_discount)
    elif args.loss in DIVERGENCES:
        loss = chunked_token_divergence(student_hidden, student_head, teacher_hidden, mask, args.loss,
                                        teacher_head=teacher_head, tau=tau, beta=args.jsd_beta,
                                        skew=args.skew_lambda, mu=args.akl_mu, chunk_tokens=chunk)
    else:   # the PW-OPSD family; REOPOLD's phase reads the 0-based step, as the release's global_step
        loss = selfdistill_loss(student_hidden, student_head, teacher_hidden, teacher_head, rollouts.response, mask,
                                selfdistill_settings(args), step - 1)
    return loss, kl_to_teacher


def rollout_rows(rollouts: Rollouts, rows: slice) -> Rollouts:
    """The rollouts of some rows (every batch-first tensor field sliced; the prompt length kept)."""
    tensors = {f.name: getattr(rollouts, f.name) for f in dataclasses.fields(rollouts)}
    return dataclasses.replace(rollouts, **{name: value[rows] for name, value in tensors.items()
                                            if isinstance(value, torch.Tensor)})


def teacher_parts(sources: list[PromptSource], batches: list[list[int]], rollouts: Rollouts, tokenizer,
                  n: int, thinking: bool | None = None) -> list[tuple[slice, Rollouts | None]]:
    """Each source's rows of the concatenated batch (n rollouts per prompt), with the same responses after
    its teacher's privileged prompts for self-distillation (else None)."""
    parts, first = [], 0
    for source, batch in zip(sources, batches):
        rows = slice(first, first + len(batch) * n)
        first = rows.stop
        view = rollouts if len(sources) == 1 else rollout_rows(rollouts, rows)
        parts.append((rows, None if source.privileged is None else with_prompts(
            view, tokenizer, [source.privileged[i] for i in batch], n, thinking)))
    return parts


def loss_units(loss: str, mask: torch.Tensor) -> int:
    """What a loss averages over in one batch: its sequences with a response token (pwopsd), else its tokens."""
    return int((mask.sum(-1) > 0).sum()) if loss == "pwopsd" else int(mask.sum())


def micro_batch_units(args: argparse.Namespace, mask: torch.Tensor) -> int:
    """A micro-batch's weight in the step's loss (its share = units / the step's total over processes):
    its loss units, or 1 each with --loss-average micro_batch (the mean of the micro-batches' losses)."""
    return 1 if args.loss_average == "micro_batch" else loss_units(args.loss, mask)


def multi_teacher_loss(student, teachers: list, rollouts: Rollouts, args: argparse.Namespace,
                       parts: list[tuple[slice, Rollouts | None]],
                       step: int = 1) -> tuple[torch.Tensor, float, list[float]]:
    """(loss, kl_to_teacher, kl_to_teacher per teacher) over a batch whose rows `parts[i][0]` belong to
    teachers[i] (with its privileged rollouts `parts[i][1]`, or None). One teacher: distillation_loss on
    the whole batch. Several: each teacher's loss on its rows, weighted by its share of the loss units
    (tokens; sequences for pwopsd), so the result is the loss over the concatenated batch."""
    if len(parts) == 1:
        loss, kl = distillation_loss(student, teachers[0], rollouts, args, parts[0][1], step)
        return loss, kl, [kl]
    units = [loss_units(args.loss, rollouts.response_mask[rows]) for rows, _ in parts]
    tokens = [int(rollouts.response_mask[rows].sum()) for rows, _ in parts]
    total_units, total_tokens = max(sum(units), 1), max(sum(tokens), 1)
    loss, kls = 0.0, []
    for teacher, (rows, privileged), unit in zip(teachers, parts, units):
        part_loss, part_kl = distillation_loss(student, teacher, rollout_rows(rollouts, rows), args, privileged,
                                                step)
        loss = loss + part_loss * (unit / total_units)
        kls.append(part_kl)
    kl = sum(k * n for k, n in zip(kls, tokens)) / total_tokens
    return loss, kl, kls


# ----------------------------------------------------------------------------- run

def yes_no(text: str) -> bool:
    """A config boolean as a flag value: true/false (config_argv writes Python's True/False)."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, found {text!r}")
    return text.lower() == "true"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="motab kd-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", required=True, help="HF checkpoint folder of the student (trained)")
    p.add_argument("--teacher", required=True, action="append",
                   help="HF checkpoint folder of the teacher (frozen; same tokenizer), or 'self': the starting "
                        "student scored with the problem + reference solution (rows need \"solution\"). "
                        "Repeat --teacher, --prompts and --prompts-per-step once per teacher (several teachers)")
    p.add_argument("--prompts", required=True, action="append",
                   help="KDFlow prompt JSONL: {id, messages, answer, solution} (of the teacher in the same place)")
    p.add_argument("--output", required=True, help="folder for the trained HF checkpoint (+ kd_run.json)")
    p.add_argument("--log-csv", help="progress CSV written as training goes: " + ", ".join(CSV_COLUMNS)
                   + f" (the checkpoint's {LOG_FILE} has the same rows without seconds)")
    p.add_argument("--loss", choices=LOSSES, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--prompts-per-step", type=int, required=True, action="append",
                   help="prompts a step takes from these prompts (of the teacher in the same place)")
    p.add_argument("--samples-per-prompt", type=int, required=True)
    p.add_argument("--max-new-tokens", type=int, required=True)
    p.add_argument("--temperature", type=float, required=True, help="sampling temperature of the rollouts")
    p.add_argument("--lr", type=float, required=True, help="constant AdamW learning rate")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--kl-discount", type=float, default=0.0, help="rkl_onpolicy: discount g of future k_t (0 = none)")
    p.add_argument("--jsd-beta", type=float, default=0.5, help="jsd: teacher weight in the mixture (0 = fkl, 1 = rkl)")
    p.add_argument("--distill-temperature", type=float, default=1.0,
                   help="divergence losses and reopold: logits / tau (the PW-OPSD family uses 1.1)")
    p.add_argument("--skew-lambda", type=float, default=0.1, help="skl/srkl: weight of p_T (skl) or p_S (srkl) in the mix")
    p.add_argument("--akl-mu", type=float, default=0.5, help="akl: teacher mass of the head")
    p.add_argument("--top-p", type=float, default=1.0, help="rollout nucleus sampling (1 = none)")
    p.add_argument("--top-k", type=int, default=0, help="rollout top-k sampling (0 = none)")
    p.add_argument("--student-thinking", type=yes_no, default=None,
                   help="enable_thinking of the student's chat template (default: the template's own)")
    p.add_argument("--teacher-thinking", type=yes_no, default=None,
                   help="enable_thinking of the self-teacher's chat template (default: the template's own)")
    p.add_argument("--prompt-style", choices=PROMPT_STYLES, default="opsd",
                   help="self-distillation prompts: opsd (the student's messages as given, OPSD's teacher "
                        "wording) or pwopsd (the PW-OPSD release's student and teacher messages)")
    p.add_argument("--mask-pad-tokens", type=yes_no, default=False,
                   help="true: leave response tokens equal to the pad token out of the loss (the PW-OPSD "
                        "release; the eos itself where a tokenizer's pad is its eos)")
    p.add_argument("--clip", type=float, default=0.05, help="opsd/pwopsd: forward-KL clip")
    p.add_argument("--compat", choices=COMPATS, default="released",
                   help="opsd/pwopsd clip: released (each vocabulary entry) or paper (each token's KL)")
    p.add_argument("--w-min", type=float, default=PW_PRESETS["moderate"].w_min, help="pwopsd: weight floor")
    p.add_argument("--pw-tau", type=float, default=PW_PRESETS["moderate"].tau, help="pwopsd: sigmoid centre in u = t/T")
    p.add_argument("--pw-s", type=float, default=PW_PRESETS["moderate"].s, help="pwopsd: sigmoid width")
    p.add_argument("--reopold-lambda", type=float, default=REOPOLD_LAMBDA,
                   help="reopold: reward floor log(lambda) / (1 - lambda)")
    p.add_argument("--reopold-beta", type=float, default=REOPOLD_BETA,
                   help="reopold phase II: the highest-student-entropy fraction of tokens trained on")
    p.add_argument("--reopold-t-switch", type=int, default=REOPOLD_T_SWITCH,
                   help="reopold: steps of phase I (reward floor drop) before phase II (entropy mask)")
    p.add_argument("--lr-schedule", choices=("constant", "linear"), default="constant",
                   help="constant, or linear decay to 0 over --steps without warmup")
    p.add_argument("--loss-average", choices=("step", "micro_batch"), default="step",
                   help="step: the loss over the whole step's batch; micro_batch: the mean of each "
                        "micro-batch's own loss (transformers' gradient accumulation)")
    p.add_argument("--lora-rank", type=int, default=0, help="train LoRA adapters of this rank (0 = full weights)")
    p.add_argument("--lora-alpha", type=float, default=0.0, help="LoRA alpha (0 = 2 x rank, as OPSD's 64/128)")
    p.add_argument("--lora-unembed", type=yes_no, default=False,
                   help="true: LoRA on the unembedding (lm_head) too, as Tinker's train_unembed")
    p.add_argument("--lora-init", choices=LORA_INITS, default="fresh",
                   help="fresh: new adapters on the student's weights; sft_adapter: continue <student>/adapter")
    p.add_argument("--adam-beta2", type=float, default=0.999, help="AdamW beta2 (Tinker: 0.95)")
    p.add_argument("--prompt-order", choices=("shuffled", "file"), default="shuffled",
                   help="shuffled by --seed, or the prompt file's order (Tinker)")
    p.add_argument("--max-prompt-tokens", type=int, default=0,
                   help="cut each user message to its first N tokens (Tinker: 1024; 0 = no cut)")
    p.add_argument("--chunk-tokens", type=int, default=1024, help="tokens per chunk of logits")
    p.add_argument("--micro-batch-prompts", type=int, default=0,
                   help="prompts per generate call and per forward/backward, gradients accumulated over a "
                        "process's share of the step (0 = the whole share at once)")
    p.add_argument("--gradient-checkpointing", type=yes_no, default=False,
                   help="true: recompute each student layer in backward (activation memory of one layer)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--tracking", choices=("tensorboard", "wandb"), default=None,
                   help="also log each step's scalars to TensorBoard or wandb (motab.tracking)")
    p.add_argument("--tracking-dir", default=None, help="TensorBoard event / wandb folder")
    p.add_argument("--tracking-project", default=None, help="wandb project")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                   help="weights and activations of both models (bfloat16 on GPUs; losses stay float32)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0 = no clipping)")
    p.add_argument("--save-steps", type=int, default=0, help="resumable state every K steps (0 = never)")
    p.add_argument("--eval-step", type=int, default=0,
                   help="the step whose weights become the output checkpoint (0 = the last step)")
    p.add_argument("--params-json", default="{}", help="config values this run depends on (for provenance)")
    args = p.parse_args(argv)
    counts = {flag: len(getattr(args, flag.replace("-", "_"))) for flag in ("teacher", "prompts", "prompts-per-step")}
    if len(set(counts.values())) != 1:
        p.error("give --teacher, --prompts and --prompts-per-step once per teacher; found "
                + ", ".join(f"{n} --{flag}" for flag, n in counts.items()))
    for name in ("steps", "samples_per_prompt", "max_new_tokens", "chunk_tokens", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, found {getattr(args, name)}")
    if min(args.prompts_per_step) < 1:
        p.error(f"--prompts-per-step must be >= 1, found {min(args.prompts_per_step)}")
    if args.temperature <= 0 or args.distill_temperature <= 0:
        p.error("temperatures must be > 0")
    checks = [(0 <= args.skew_lambda < 1, "--skew-lambda must lie in [0, 1)"),
              (0 < args.akl_mu <= 1, "--akl-mu must lie in (0, 1]"), (args.clip > 0, "--clip must be > 0"),
              (0 <= args.w_min <= 1 and args.pw_s > 0, "--w-min must lie in [0, 1] and --pw-s be > 0"),
              (0 < args.reopold_lambda < 1, "--reopold-lambda must lie in (0, 1)"),
              (0 < args.reopold_beta <= 1, "--reopold-beta must lie in (0, 1]"),
              (0 < args.top_p <= 1 and args.top_k >= 0, "--top-p must lie in (0, 1] and --top-k be >= 0"),
              (args.loss != "rkl_onpolicy" or (args.top_p == 1 and args.top_k == 0),
               ("rkl_onpolicy needs untruncated sampling (--top-p 1, --top-k 0): its sampler log-probabilities "
                "are the student's full distribution at --temperature")),
              (args.lora_rank >= 0 and args.lora_alpha >= 0, "--lora-rank and --lora-alpha must be >= 0"),
              (0 <= args.eval_step <= args.steps, f"--eval-step must lie in [0, --steps = {args.steps}]"),
              (args.micro_batch_prompts >= 0, "--micro-batch-prompts must be >= 0"),
              (0 <= args.adam_beta2 < 1, "--adam-beta2 must lie in [0, 1)"),
              (args.max_prompt_tokens >= 0, "--max-prompt-tokens must be >= 0"),
              (args.lora_init == "fresh" or args.lora_rank > 0, "--lora-init sft_adapter needs --lora-rank"),
              (args.lora_init == "fresh" or SELF not in args.teacher,
               "--lora-init sft_adapter with --teacher self: the adapters-off teacher would be the base model, "
               "not the SFT student")]
    for ok, message in checks:
        if not ok:
            p.error(message)
    try:
        args.params = json.loads(args.params_json)
    except json.JSONDecodeError as exc:
        p.error(f"--params-json is not valid JSON: {exc}")
    return args


def load_models(args: argparse.Namespace, device: torch.device | None = None):
    """(student, teachers aligned with args.teacher, tokenizer) on `device` (default: CUDA if available,
    else CPU); each distinct teacher is loaded once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    tokenizer = AutoTokenizer.from_pretrained(args.student)
    tokenizer.padding_side = "left"
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(f"{args.student}: the tokenizer needs an eos and a pad token")
    for name in dict.fromkeys(args.teacher):
        if name != SELF and AutoTokenizer.from_pretrained(name).get_vocab() != tokenizer.get_vocab():
            raise ValueError(f"{name}: the teacher's tokenizer differs from the student's ({args.student});"
                             " this trainer needs a shared tokenizer")
    dtype = DTYPES[args.dtype]
    adapter = sft_adapter(args) if args.lora_init == "sft_adapter" else None
    start = adapter[1] if adapter else args.student   # continuing: the base model under the SFT adapter
    student = AutoModelForCausalLM.from_pretrained(start, dtype=dtype).to(device)
    if args.lora_unembed and student.config.get_text_config().tie_word_embeddings:
        # merging a LoRA on a tied lm_head would change the input embeddings too
        raise ValueError(f"{start}: --lora-unembed needs untied input and output embeddings (tie_word_embeddings)")
    loaded = {}
    for name in dict.fromkeys(args.teacher):
        if name == SELF:   # LoRA: the student with adapters off (set below), else a frozen copy
            loaded[name] = None if args.lora_rank else copy.deepcopy(student)
        else:
            loaded[name] = AutoModelForCausalLM.from_pretrained(name, dtype=dtype).to(device)
    if args.gradient_checkpointing:   # the student's layers only (teachers never run backward)
        student.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if adapter:
        from peft import PeftModel

        student = PeftModel.from_pretrained(student, str(adapter[0]), is_trainable=True)
    elif args.lora_rank:
        from peft import LoraConfig, get_peft_model

        student = get_peft_model(student, LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha or 2 * args.lora_rank,
                                                     lora_dropout=0.0, target_modules=lora_targets(args),
                                                     task_type="CAUSAL_LM"))
    for name, teacher in loaded.items():
        if teacher is None:
            loaded[name] = student
        else:
            teacher.eval().requires_grad_(False)
    student.train()
    return student, [loaded[name] for name in args.teacher], tokenizer


def lora_targets(args: argparse.Namespace) -> list[str]:
    return [*LORA_TARGETS, *([UNEMBED] if args.lora_unembed else [])]


def sft_adapter(args: argparse.Namespace) -> tuple[Path, str]:
    """(<student>/adapter, its base model) for --lora-init sft_adapter; the adapter's rank, alpha and
    targets must be the ones asked for (continuing cannot change them)."""
    folder = Path(args.student) / ADAPTER
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise ValueError(f"--lora-init sft_adapter: {config_path} not found (the student must be a LoRA SFT output)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    targets = config.get("target_modules") or []
    asked = {"r": args.lora_rank, "lora_alpha": args.lora_alpha or 2 * args.lora_rank,
             "target_modules": sorted(lora_targets(args))}
    found = {"r": config.get("r"), "lora_alpha": config.get("lora_alpha"),
             "target_modules": sorted([targets] if isinstance(targets, str) else targets)}
    if asked != found:
        raise ValueError(f"{config_path}: the SFT adapter has {found}, but this run asks for {asked}")
    return folder, config["base_model_name_or_path"]


def make_optimizer(trainable: list, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW, weight decay 0, betas (0.9, --adam-beta2) (Tinker's AdamParams: beta2 0.95)."""
    return torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, args.adam_beta2), weight_decay=0.0)


def run_config(args: argparse.Namespace) -> dict:
    return {k: v for k, v in sorted(vars(args).items()) if k not in ("params",)}


def check_shares(sources: list[PromptSource], processes: Processes) -> None:
    """Every process takes the same number of each teacher's prompts a step."""
    for source in sources:
        if source.per_step % processes.world:
            raise ValueError(f"--prompts-per-step {source.per_step} ({source.prompts}) is not a multiple of the "
                             f"{processes.world} training processes; each process takes an equal share")


@dataclass
class MicroBatch:
    """Rollouts sampled together: the teachers with prompts in them, and each one's rows (teacher_parts)."""

    teachers: list[int]                             # indices into the run's sources / teachers
    rollouts: Rollouts
    parts: list[tuple[slice, Rollouts | None]]


def micro_batches(batches: list[list[int]], size: int) -> list[list[list[int]]]:
    """Split one process's prompts of a step (a list per source) into groups of at most `size` prompts
    (0 = one group), in order; each group is again a list per source, empty where it has none."""
    flat = [(i, prompt) for i, batch in enumerate(batches) for prompt in batch]
    size = size or max(len(flat), 1)
    groups = []
    for start in range(0, len(flat), size):
        group = [[] for _ in batches]
        for i, prompt in flat[start:start + size]:
            group[i].append(prompt)
        groups.append(group)
    return groups


def sample_step(student, sources: list[PromptSource], tokenizer, args: argparse.Namespace, step: int,
                processes: Processes) -> list[MicroBatch]:
    """This process's rollouts for `step`, sampled micro-batch by micro-batch from the current weights."""
    batches = [processes.share(batch) for batch in source_batches(sources, step)]
    out = []
    for group in micro_batches(batches, args.micro_batch_prompts):
        active = [i for i, batch in enumerate(group) if batch]
        rollouts = sample_rollouts(student, tokenizer, [sources[i].conversations[j] for i in active for j in group[i]],
                                   args.samples_per_prompt, args.max_new_tokens, args.temperature, args.top_p,
                                   args.top_k, args.student_thinking, args.mask_pad_tokens)
        parts = teacher_parts([sources[i] for i in active], [group[i] for i in active], rollouts, tokenizer,
                              args.samples_per_prompt, args.teacher_thinking)
        out.append(MicroBatch(active, rollouts, parts))
    return out


def accumulate_gradients(student, teachers: list, micro: list[MicroBatch], args: argparse.Namespace,
                         processes: Processes, step: int = 1) -> tuple[dict[str, float], list[float]]:
    """Backward of the step's loss, one micro-batch at a time; returns the step's metrics over all
    processes and kl_to_teacher per teacher.

    --loss-average step: each micro-batch's loss is scaled by its share of the step's loss units
    (tokens; sequences for pwopsd) over all micro-batches and processes, so the gradients add up
    (here, then over the processes in sum_gradients) to the gradient of the loss over the whole batch.
    --loss-average micro_batch (the PW-OPSD release: transformers' Trainer divides each micro-batch's
    mean by the accumulation steps and DeepSpeed averages the processes): the step's loss is the plain
    mean of the micro-batches' own losses."""
    units = [micro_batch_units(args, m.rollouts.response_mask) for m in micro]
    part_tokens = [[int(m.rollouts.response_mask[rows].sum()) for rows, _ in m.parts] for m in micro]
    tokens = [0] * len(teachers)
    for m, counts in zip(micro, part_tokens):
        for i, count in zip(m.teachers, counts):
            tokens[i] += count
    rows = sum(len(m.rollouts.response_mask) for m in micro)
    total_units, total_rows, *total_tokens = processes.sum([sum(units), rows, *tokens])
    loss_sum, kl_sums = 0.0, [0.0] * len(teachers)
    for m, unit, counts in zip(micro, units, part_tokens):
        loss, _, kls = multi_teacher_loss(student, [teachers[i] for i in m.teachers], m.rollouts, args, m.parts,
                                          step)
        term = loss * (unit / max(total_units, 1.0))   # x 1.0 exactly with one micro-batch and one process
        term.backward()
        loss_sum += term.item()
        for i, kl, count in zip(m.teachers, kls, counts):
            kl_sums[i] += kl * count
    loss_total, *kl_totals = processes.sum([loss_sum, *kl_sums])
    by_teacher = [kl / max(n, 1.0) for kl, n in zip(kl_totals, total_tokens)]
    metrics = {"loss": loss_total, "kl_to_teacher": sum(kl_totals) / max(sum(total_tokens), 1.0),
               "rollout_tokens": sum(total_tokens) / total_rows}
    return metrics, by_teacher


def train(args: argparse.Namespace) -> dict:
    """Run the whole training; returns the kd_run.json record. With several processes (processes.py)
    each runs this: all train, the main one logs and writes."""
    processes = current_processes()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + processes.rank)   # each process samples its own rollouts
    sources = prompt_sources(args)
    check_shares(sources, processes)
    student, teachers, tokenizer = load_models(args, processes.device)
    cut_prompts(sources, tokenizer, args.max_prompt_tokens)
    trainable = [q for q in student.parameters() if q.requires_grad]
    processes.broadcast(trainable)
    processes.check_replicas(student.parameters(), "after loading")
    optimizer = make_optimizer(trainable, args)

    partial = Path(str(Path(args.output)) + ".partial")
    resume_key = {k: v for k, v in run_config(args).items() if k not in RESUME_FREE} | {"processes": processes.world}
    rows, first_step = [], 1
    if args.save_steps and (latest := latest_training_state(partial)) is not None:
        state = load_training_state(latest, student, optimizer)
        if state["resume_key"] != resume_key:
            raise ValueError(f"{latest}: saved by a run with other arguments; remove {partial} to start afresh")
        torch.set_rng_state(state["rng"][processes.rank])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda_rng"][processes.rank], processes.device)
        rows, first_step = state["rows"], state["step"] + 1
        if processes.main:
            print(f"resuming from {latest}")

    progress = None
    if args.log_csv and processes.main:
        Path(args.log_csv).parent.mkdir(parents=True, exist_ok=True)
        progress = open(args.log_csv, "w", newline="", encoding="utf-8")
    tracker = Tracker(args.tracking if processes.main else None, args.tracking_dir, Path(args.output).name,
                      args.tracking_project)
    with progress if progress is not None else contextlib.nullcontext():
        per_teacher = [f"kl_to_teacher_{i}" for i in range(1, len(sources) + 1)] if len(sources) > 1 else []
        writer = None if progress is None else csv.DictWriter(progress, fieldnames=[*CSV_COLUMNS, *per_teacher])
        if writer is not None:
            writer.writeheader()
            writer.writerows(rows)
            progress.flush()
        for step in range(first_step, args.steps + 1):
            start = time.perf_counter()
            micro = sample_step(student, sources, tokenizer, args, step, processes)
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(args, step)
            metrics, kls = accumulate_gradients(student, teachers, micro, args, processes, step)
            processes.sum_gradients(trainable)
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, args.grad_clip)
            optimizer.step()
            row = {"step": step, "loss": f"{metrics['loss']:.6f}", "kl_to_teacher": f"{metrics['kl_to_teacher']:.6f}",
                   "rollout_tokens": f"{metrics['rollout_tokens']:.3f}",
                   "seconds": f"{time.perf_counter() - start:.3f}"}
            row.update({column: f"{kl:.6f}" for column, kl in zip(per_teacher, kls)})
            rows.append(row)
            tracker.log(step, row)
            if processes.main:
                print(",".join(str(row[c]) for c in [*CSV_COLUMNS, *per_teacher]), flush=True)
            if writer is not None:
                writer.writerow(row)
                progress.flush()
            if step == args.eval_step < args.steps and processes.main:
                atomic_state_dict(student, partial / f"eval-step-{step}")
            if args.save_steps and step % args.save_steps == 0 and step < args.steps:
                rng = processes.gather(torch.get_rng_state())
                cuda_rng = processes.gather(torch.cuda.get_rng_state(processes.device)) if torch.cuda.is_available() \
                    else None
                if processes.main:
                    save_training_state(partial, step, student, optimizer,
                                        {"rng": rng, "cuda_rng": cuda_rng, "rows": rows, "resume_key": resume_key})

    tracker.close()
    processes.check_replicas(student.parameters(), f"after step {args.steps}")
    evaluated = args.eval_step or args.steps
    record = {"args": run_config(args), "params": args.params, "processes": processes.world,
              "provenance": provenance(args.params or resume_key),
              "final": {"steps": args.steps, "loss": rows[-1]["loss"], "kl_to_teacher": rows[-1]["kl_to_teacher"],
                        "checkpoint_step": evaluated}}
    if per_teacher:
        record["final"]["kl_to_teacher_by_teacher"] = [rows[-1][column] for column in per_teacher]
    if not processes.main:
        return record
    if evaluated < args.steps:
        student.load_state_dict(torch.load(partial / f"eval-step-{evaluated}" / "model.pt", weights_only=True))
    final = student.merge_and_unload() if args.lora_rank else student   # a plain HF checkpoint either way
    atomic_save(final, tokenizer, args.output, extra_json={"kd_run.json": record},
                extra_text={LOG_FILE: training_log(rows)})
    if partial.exists():
        shutil.rmtree(partial)
    return record


def learning_rate(args: argparse.Namespace, step: int) -> float:
    """The learning rate of 1-based `step`: constant, or linear from --lr to 0 over --steps without warmup
    (transformers' default "linear" scheduler, which the PW-OPSD release's Trainer uses)."""
    if args.lr_schedule == "constant":
        return args.lr
    return args.lr * max(0.0, (args.steps - (step - 1)) / args.steps)


def training_log(rows: list[dict]) -> str:
    """training_log.csv: LOG_COLUMNS, one row per step, values as formatted when logged."""
    lines = [",".join(LOG_COLUMNS)] + [",".join(str(row[c]) for c in LOG_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if (command := accelerate_command(os.environ, argv, torch.cuda.device_count())) is not None:
        # several GPUs in this SLURM job: one process per GPU, each with its share of the job's CPUs
        print("launching:", shlex.join(command), flush=True)
        per_node = int(torchrun_env(os.environ, torch.cuda.device_count())["NPROC_PER_NODE"])
        return subprocess.call(command, env=child_env() | thread_env(os.environ, per_node))
    train(args)
    return 0
