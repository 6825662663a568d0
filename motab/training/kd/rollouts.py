"""KD rollouts: sample the student's responses, put them after other prompts (a self-teacher's
privileged context), and take the hidden states that predict each response token."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from motab.training.kd.prompts import PromptSource, render


@dataclass
class Rollouts:
    """R = B*n sequences: [left-padded prompt (P) | response (M, right-padded after eos)]."""

    input_ids: torch.Tensor  # [R, P+M]
    attention_mask: torch.Tensor  # [R, P+M]
    prompt_len: int  # P
    response: torch.Tensor  # [R, M]
    response_mask: torch.Tensor  # [R, M] bool: tokens up to and including the first eos

    @property
    def position_ids(self) -> torch.Tensor:
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def sample_rollouts(
    model,
    tokenizer,
    conversations: list[list[dict]],
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    top_k: int = 0,
    thinking: bool | None = None,
    mask_pad: bool = False,
) -> Rollouts:
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
    sequences = model.generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        do_sample=True,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.train(was_training)
    prompt_len = prompt_ids.shape[1]
    response = sequences[:, prompt_len:]
    mask = response_mask(response, tokenizer.eos_token_id, tokenizer.pad_token_id if mask_pad else None)
    return Rollouts(
        input_ids=sequences,
        attention_mask=torch.cat([prompt_mask, mask.long()], 1),
        prompt_len=prompt_len,
        response=response,
        response_mask=mask,
    )


def response_mask(response: torch.Tensor, eos_id: int, pad_id: int | None = None) -> torch.Tensor:
    """[R, M] bool: the tokens up to and including the first eos; with pad_id, less every token equal to
    it (the PW-OPSD release masks labels equal to the pad token, which is the eos for some tokenizers)."""
    is_eos = response == eos_id
    mask = (is_eos.long().cumsum(-1) - is_eos.long()) == 0
    return mask if pad_id is None else mask & (response != pad_id)


def with_prompts(
    rollouts: Rollouts, tokenizer, conversations: list[list[dict]], n: int, thinking: bool | None = None
) -> Rollouts:
    """The same response tokens after other prompts (the teacher's privileged context), n per prompt."""
    texts = [render(tokenizer, c, thinking) for c in conversations]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(rollouts.response.device)
    prompt_ids = enc.input_ids.repeat_interleave(n, dim=0)
    prompt_mask = enc.attention_mask.repeat_interleave(n, dim=0)
    return Rollouts(
        input_ids=torch.cat([prompt_ids, rollouts.response], 1),
        attention_mask=torch.cat([prompt_mask, rollouts.response_mask.long()], 1),
        prompt_len=prompt_ids.shape[1],
        response=rollouts.response,
        response_mask=rollouts.response_mask,
    )


def causal_lm(model):
    """The transformers causal LM inside a PEFT wrapper (LoRA layers stay injected), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def response_hidden(model, rollouts: Rollouts) -> torch.Tensor:
    """Final hidden states at the positions that predict each response token: [R, M, d]."""
    hidden = (
        causal_lm(model)
        .base_model(
            input_ids=rollouts.input_ids,
            attention_mask=rollouts.attention_mask,
            position_ids=rollouts.position_ids,
            use_cache=False,
        )
        .last_hidden_state
    )
    return hidden[:, rollouts.prompt_len - 1 : -1]


def rollout_rows(rollouts: Rollouts, rows: slice) -> Rollouts:
    """The rollouts of some rows (every batch-first tensor field sliced; the prompt length kept)."""
    tensors = {f.name: getattr(rollouts, f.name) for f in dataclasses.fields(rollouts)}
    return dataclasses.replace(
        rollouts, **{name: value[rows] for name, value in tensors.items() if isinstance(value, torch.Tensor)}
    )


def teacher_parts(
    sources: list[PromptSource],
    batches: list[list[int]],
    rollouts: Rollouts,
    tokenizer,
    n: int,
    thinking: bool | None = None,
) -> list[tuple[slice, Rollouts | None]]:
    """Each source's rows of the concatenated batch (n rollouts per prompt), with the same responses after
    its teacher's privileged prompts for self-distillation (else None)."""
    parts, first = [], 0
    for source, batch in zip(sources, batches):
        rows = slice(first, first + len(batch) * n)
        first = rows.stop
        view = rollouts if len(sources) == 1 else rollout_rows(rollouts, rows)
        parts.append(
            (
                rows,
                None
                if source.privileged is None
                else with_prompts(view, tokenizer, [source.privileged[i] for i in batch], n, thinking),
            )
        )
    return parts
