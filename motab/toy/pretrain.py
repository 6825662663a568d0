"""Build a toy Qwen3 model and pretrain it on the toy problems (loss on the solution only).

The teacher and the student come from this one function with different shapes and budgets:
the teacher larger and trained longer, so it is clearly stronger than the base student.

Each problem is trained in two forms, as a real Qwen model meets both: the chat prompt (SFT, KD
and eval send it) and the raw question the MOTAB release's step loops send in `compat: released`
(motab.synthesis.steps). A released loop's context is the question followed by the steps accepted
so far, each without the "." the server trimmed with the stop string ".\n\n" and followed by
"\n\n"; the raw form of a problem is one such context, cut after k parts of its solution (k cycles
over the problems), with the rest of the solution as the target. Without it the toy models never
saw the released prompt and every `compat: released` row would be noise.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
from pathlib import Path

from motab.commandline import command_parser
from motab.jsonio import read_jsonl, write_json
from motab.provenance import provenance
from motab.synthesis.steps import STEP_JOIN, STEP_STOP
from motab.toy.model import ModelShape, build_qwen3
from motab.toy.tokenizer import chat_text


def released_context(question: str, solution: str, k: int) -> tuple[str, str]:
    """(context, target): a released step loop's context after the first k of the solution's parts
    (its steps and answer line, separated by "\n\n"), and what the model should write from there.
    k = 0 is the raw question, whose first step the model starts with "\n\n"; k = len(parts) is the
    whole solution, after which the model should stop (the loop then reads an empty step)."""
    parts = solution.split(STEP_JOIN)
    trimmed = STEP_STOP[: -len(STEP_JOIN)]  # the "." the stop string takes off each step
    steps = [p.removesuffix(trimmed) if i < len(parts) - 1 else p for i, p in enumerate(parts[:k])]
    context = question + "".join(STEP_JOIN + step for step in steps) + (STEP_JOIN if k else "")
    target = STEP_JOIN.join(parts[k:])
    return context, (STEP_JOIN + target if k == 0 else target)


def encode_examples(tokenizer, rows: list[dict]) -> list[tuple[list[int], int]]:
    """(token ids of the whole example, number of prompt tokens), two per row (the chat form, then
    the released raw form); the prompt is not trained on."""
    examples = []
    for index, row in enumerate(rows):
        prompt_ids = tokenizer(chat_text(row["input"]), add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(chat_text(row["input"], row["solution"]), add_special_tokens=False)["input_ids"]
        assert full_ids[: len(prompt_ids)] == prompt_ids, "prompt tokens must prefix the full chat"
        examples.append((full_ids[:-1], len(prompt_ids)))  # drop the trailing "\n" after <|im_end|>
        k = index % (len(row["solution"].split(STEP_JOIN)) + 1)
        context, target = released_context(row["input"], row["solution"], k)
        # the context as the server tokenizes it, the target as the model then writes it, token by token
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((context_ids + target_ids, len(context_ids)))
    return examples


def make_batch(examples, indices, pad_id: int):
    import torch

    length = max(len(examples[i][0]) for i in indices)
    input_ids = torch.full((len(indices), length), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), length), -100, dtype=torch.long)
    attention = torch.zeros((len(indices), length), dtype=torch.long)
    for row, i in enumerate(indices):
        ids, n_prompt = examples[i]
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
        attention[row, : len(ids)] = 1
    return input_ids, labels, attention


def _lr_schedule(lr: float, warmup_steps: int, steps: int):
    """The learning rate of each 0-based step: linear warm-up, cosine decay to 10%."""

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    return lr_at


def _next_indices(order: list[int], batch_size: int, num_examples: int, generator) -> tuple[list[int], list[int]]:
    """(this batch's example indices, the rest of the order); a fresh permutation is appended when
    fewer than a batch remain, so the draws from `generator` are one randperm per epoch."""
    import torch

    if len(order) < batch_size:
        order = order + torch.randperm(num_examples, generator=generator).tolist()
    return order[:batch_size], order[batch_size:]


def _train_step(model, optimizer, batch, lr: float):
    """One optimizer step on one batch at learning rate `lr` (gradients clipped to norm 1); the loss."""
    import torch

    input_ids, labels, attention = batch
    loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


def _write_log_csv(log_csv: str, log_rows: list[dict]) -> None:
    """The per-step training log (step, loss, lr, seconds) as CSV."""
    Path(log_csv).parent.mkdir(parents=True, exist_ok=True)
    with open(log_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(log_rows[0]))
        writer.writeheader()
        writer.writerows(log_rows)


def _save_checkpoint(model, tokenizer, output: str, params: dict, loss, log_rows: list[dict], log_csv: str | None):
    """Model, tokenizer and pretrain.json, written under a temporary name and renamed, so a killed
    job never leaves a checkpoint that looks done; the log CSV is written before the rename."""
    out, tmp = Path(output), Path(output).with_name(f".{Path(output).name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.eval()
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    write_json(
        tmp / "pretrain.json",
        {
            "params": params,
            "num_parameters": model.num_parameters(),
            "final_loss": round(loss.item(), 6),
            "provenance": provenance(params),
        },
    )
    if log_csv:
        _write_log_csv(log_csv, log_rows)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(f"{model.num_parameters():,} parameters, final loss {loss.item():.4f} -> {out}")


def pretrain(
    problems: str,
    tokenizer_dir: str,
    output: str,
    shape: ModelShape,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int,
    seed: int,
    threads: int,
    log_csv: str | None = None,
) -> None:
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_qwen3(tokenizer, shape, seed=seed)
    model.train()
    examples = encode_examples(tokenizer, read_jsonl(problems))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    lr_at = _lr_schedule(lr, warmup_steps, steps)

    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    log_rows, start = [], time.time()
    for step in range(steps):
        indices, order = _next_indices(order, batch_size, len(examples), generator)
        batch = make_batch(examples, indices, tokenizer.pad_token_id)
        loss = _train_step(model, optimizer, batch, lr_at(step))
        log_rows.append(
            {
                "step": step + 1,
                "loss": f"{loss.item():.6f}",
                "lr": f"{lr_at(step):.3e}",
                "seconds": f"{time.time() - start:.1f}",
            }
        )
        if (step + 1) % 50 == 0 or step + 1 == steps:
            print(f"step {step + 1}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)", flush=True)

    params = {
        "shape": vars(shape),
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_steps": warmup_steps,
        "seed": seed,
    }
    _save_checkpoint(model, tokenizer, output, params, loss, log_rows, log_csv)


def main(argv: list[str]) -> int:
    parser = command_parser(
        "toy-pretrain",
        __doc__,
        "motab toy-pretrain --problems results/toy/data/problems.jsonl --tokenizer results/toy/models/tokenizer --output results/toy/models/toy-student --hidden-size 32 --num-layers 2 --num-heads 4 --num-kv-heads 2 --intermediate-size 128 --steps 250 --batch-size 32 --lr 0.003 --seed 1",
    )
    parser.add_argument("--problems", required=True, help="prepared problems.jsonl (train split)")
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--hidden-size", type=int, required=True)
    parser.add_argument("--num-layers", type=int, required=True)
    parser.add_argument("--num-heads", type=int, required=True)
    parser.add_argument("--num-kv-heads", type=int, required=True)
    parser.add_argument("--intermediate-size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--log-csv")
    args = parser.parse_args(argv)
    shape = ModelShape(args.hidden_size, args.num_layers, args.num_heads, args.num_kv_heads, args.intermediate_size)
    pretrain(
        args.problems,
        args.tokenizer,
        args.output,
        shape,
        args.steps,
        args.batch_size,
        args.lr,
        args.warmup_steps,
        args.seed,
        args.threads,
        args.log_csv,
    )
    return 0
