"""One KD step's work: sample the rollouts micro-batch by micro-batch, score them with their teachers,
and accumulate the gradient of the step's loss (the objective from motab.training.kd.objectives)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from motab.losses.divergences import chunked_token_logprobs
from motab.training.kd.config import KDConfig
from motab.training.kd.objectives import LOSSES, Batch, loss_units
from motab.training.kd.prompts import PromptSource, source_batches
from motab.training.kd.rollouts import (
    Rollouts,
    causal_lm,
    response_hidden,
    rollout_rows,
    sample_rollouts,
    teacher_parts,
)
from motab.training.kd.teacher_server import ServerTeacher, teacher_token_logprobs
from motab.training.processes import Processes


def teacher_scoring(student, teacher):
    """Context for the teacher's forward pass: adapters off when the teacher is the LoRA student itself."""
    return student.disable_adapter() if teacher is student else contextlib.nullcontext()


def distillation_loss(
    student, teacher, rollouts: Rollouts, config: KDConfig, teacher_rollouts: Rollouts | None = None, step: int = 1
) -> tuple[torch.Tensor, float]:
    """(loss with grad, kl_to_teacher) for one batch of rollouts at 1-based `step`: the config's loss
    (its registry entry and params) on both models' hidden states at the response positions.

    teacher_rollouts: the same responses after the teacher's own prompts (self-distillation's
    privileged context); by default the teacher sees the student's prompts.
    """
    mask = rollouts.response_mask
    targets = rollouts.response[mask]
    student_head = causal_lm(student).lm_head
    chunk = config.chunk_tokens
    if isinstance(teacher, ServerTeacher):  # its log-probabilities of the sampled tokens only
        teacher_hidden = teacher_head = None
        logp_teacher = teacher_token_logprobs(teacher, rollouts)
    else:
        teacher_head = causal_lm(teacher).lm_head
        with torch.no_grad(), teacher_scoring(student, teacher):
            teacher_hidden = response_hidden(teacher, rollouts if teacher_rollouts is None else teacher_rollouts)
            logp_teacher = chunked_token_logprobs(teacher_hidden[mask], teacher_head, targets, chunk_tokens=chunk)
    student_hidden = response_hidden(student, rollouts)
    with torch.no_grad():
        logp_student = chunked_token_logprobs(student_hidden.detach()[mask], student_head, targets, chunk_tokens=chunk)
    kl_to_teacher = (logp_student - logp_teacher).mean().item() if targets.numel() else 0.0
    batch = Batch(
        student_hidden=student_hidden,
        student_head=student_head,
        teacher_hidden=teacher_hidden,
        teacher_head=teacher_head,
        response=rollouts.response,
        mask=mask,
        targets=targets,
        logp_student=logp_student,
        logp_teacher=logp_teacher,
        temperature=config.temperature,
        chunk_tokens=chunk,
        step=step,
    )
    return LOSSES[config.loss].fn(batch, config.loss_params), kl_to_teacher


def micro_batch_units(config: KDConfig, mask: torch.Tensor) -> int:
    """A micro-batch's weight in the step's loss (its share = units / the step's total over processes):
    its loss units, or 1 each with loss_average micro_batch (the mean of the micro-batches' losses)."""
    return 1 if config.loss_average == "micro_batch" else loss_units(config.loss, mask)


def multi_teacher_loss(
    student,
    teachers: list,
    rollouts: Rollouts,
    config: KDConfig,
    parts: list[tuple[slice, Rollouts | None]],
    step: int = 1,
) -> tuple[torch.Tensor, float, list[float]]:
    """(loss, kl_to_teacher, kl_to_teacher per teacher) over a batch whose rows `parts[i][0]` belong to
    teachers[i] (with its privileged rollouts `parts[i][1]`, or None). One teacher: distillation_loss on
    the whole batch. Several: each teacher's loss on its rows, weighted by its share of the loss units
    (tokens; sequences for pwopsd), so the result is the loss over the concatenated batch."""
    if len(parts) == 1:
        loss, kl = distillation_loss(student, teachers[0], rollouts, config, parts[0][1], step)
        return loss, kl, [kl]
    units = [loss_units(config.loss, rollouts.response_mask[rows]) for rows, _ in parts]
    tokens = [int(rollouts.response_mask[rows].sum()) for rows, _ in parts]
    total_units, total_tokens = max(sum(units), 1), max(sum(tokens), 1)
    loss, kls = 0.0, []
    for teacher, (rows, privileged), unit in zip(teachers, parts, units):
        part_loss, part_kl = distillation_loss(student, teacher, rollout_rows(rollouts, rows), config, privileged, step)
        loss = loss + part_loss * (unit / total_units)
        kls.append(part_kl)
    kl = sum(k * n for k, n in zip(kls, tokens)) / total_tokens
    return loss, kl, kls


@dataclass
class MicroBatch:
    """Rollouts sampled together: the teachers with prompts in them, and each one's rows (teacher_parts)."""

    teachers: list[int]  # indices into the run's sources / teachers
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
        for i, prompt in flat[start : start + size]:
            group[i].append(prompt)
        groups.append(group)
    return groups


def sample_step(
    student, sources: list[PromptSource], tokenizer, config: KDConfig, step: int, processes: Processes
) -> list[MicroBatch]:
    """This process's rollouts for `step`, sampled micro-batch by micro-batch from the current weights."""
    batches = [processes.share(batch) for batch in source_batches(sources, step)]
    out = []
    for group in micro_batches(batches, config.micro_batch_prompts):
        active = [i for i, batch in enumerate(group) if batch]
        rollouts = sample_rollouts(
            student,
            tokenizer,
            [sources[i].conversations[j] for i in active for j in group[i]],
            config.samples_per_prompt,
            config.max_new_tokens,
            config.temperature,
            config.top_p,
            config.top_k,
            config.student_thinking,
            config.mask_pad_tokens,
        )
        parts = teacher_parts(
            [sources[i] for i in active],
            [group[i] for i in active],
            rollouts,
            tokenizer,
            config.samples_per_prompt,
            config.teacher_thinking,
        )
        out.append(MicroBatch(active, rollouts, parts))
    return out


def accumulate_gradients(
    student, teachers: list, micro: list[MicroBatch], config: KDConfig, processes: Processes, step: int = 1
) -> tuple[dict[str, float], list[float]]:
    """Backward of the step's loss, one micro-batch at a time; returns the step's metrics over all
    processes and kl_to_teacher per teacher.

    loss_average step: each micro-batch's loss is scaled by its share of the step's loss units
    (tokens; sequences for pwopsd) over all micro-batches and processes, so the gradients add up
    (here, then over the processes in sum_gradients) to the gradient of the loss over the whole batch.
    loss_average micro_batch (the PW-OPSD release: transformers' Trainer divides each micro-batch's
    mean by the accumulation steps and DeepSpeed averages the processes): the step's loss is the plain
    mean of the micro-batches' own losses."""
    units = [micro_batch_units(config, m.rollouts.response_mask) for m in micro]
    part_tokens = [[int(m.rollouts.response_mask[rows].sum()) for rows, _ in m.parts] for m in micro]
    tokens = [0] * len(teachers)
    for m, counts in zip(micro, part_tokens):
        for i, count in zip(m.teachers, counts):
            tokens[i] += count
    rows = sum(len(m.rollouts.response_mask) for m in micro)
    total_units, total_rows, *total_tokens = processes.sum([sum(units), rows, *tokens])
    loss_sum, kl_sums = 0.0, [0.0] * len(teachers)
    for m, unit, counts in zip(micro, units, part_tokens):
        loss, _, kls = multi_teacher_loss(student, [teachers[i] for i in m.teachers], m.rollouts, config, m.parts, step)
        term = loss * (unit / max(total_units, 1.0))  # x 1.0 exactly with one micro-batch and one process
        term.backward()
        loss_sum += term.item()
        for i, kl, count in zip(m.teachers, kls, counts):
            kl_sums[i] += kl * count
    loss_total, *kl_totals = processes.sum([loss_sum, *kl_sums])
    by_teacher = [kl / max(n, 1.0) for kl, n in zip(kl_totals, total_tokens)]
    metrics = {
        "loss": loss_total,
        "kl_to_teacher": sum(kl_totals) / max(sum(total_tokens), 1.0),
        "rollout_tokens": sum(total_tokens) / total_rows,
    }
    return metrics, by_teacher
