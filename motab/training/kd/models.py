"""KD models: the student (full weights or LoRA), its teachers (each distinct one loaded once; "self"
is the starting student) and the shared tokenizer; the optimizer."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from motab.training.kd.config import SELF, KDConfig, RunOptions
from motab.training.kd.teacher_server import ServerTeacher
from motab.training.processes import default_device

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # OPSD's script
UNEMBED = "lm_head"
ADAPTER = "adapter"  # a LoRA SFT output's adapter folder (motab.training.sft)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_tokenizer(options: RunOptions):
    """The student's tokenizer (left padding); every teacher's vocabulary must be the same."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(options.student)
    tokenizer.padding_side = "left"
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(f"{options.student}: the tokenizer needs an eos and a pad token")
    for name in dict.fromkeys(options.teachers):
        if name != SELF and AutoTokenizer.from_pretrained(name).get_vocab() != tokenizer.get_vocab():
            raise ValueError(
                f"{name}: the teacher's tokenizer differs from the student's ({options.student});"
                " this trainer needs a shared tokenizer"
            )
    return tokenizer


def load_models(config: KDConfig, options: RunOptions, device: torch.device | None = None):
    """(student, teachers aligned with options.teachers, tokenizer) on `device` (default: CUDA if
    available, else CPU); each distinct teacher is loaded once."""
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    tokenizer = load_tokenizer(options)
    dtype = DTYPES[config.dtype]
    adapter = sft_adapter(config, options) if config.lora_init == "sft_adapter" else None
    start = adapter[1] if adapter else options.student  # continuing: the base model under the SFT adapter
    student = AutoModelForCausalLM.from_pretrained(start, dtype=dtype).to(device)
    if config.lora_unembed and student.config.get_text_config().tie_word_embeddings:
        # merging a LoRA on a tied lm_head would change the input embeddings too
        raise ValueError(f"{start}: lora_unembed needs untied input and output embeddings (tie_word_embeddings)")
    loaded = {}
    urls = dict(zip(options.teachers, options.teacher_urls))
    for name in dict.fromkeys(options.teachers):
        if config.teacher_server:  # scored by its server (teacher_server.py), nothing loaded here
            if name not in urls:
                raise ValueError(f"teacher_server: no server URL for teacher {name} (kd-train --teacher-url)")
            loaded[name] = ServerTeacher(urls[name], name)
        elif name == SELF:  # LoRA: the student with adapters off (set below), else a frozen copy
            loaded[name] = None if config.lora_rank else copy.deepcopy(student)
        else:
            loaded[name] = AutoModelForCausalLM.from_pretrained(name, dtype=dtype).to(device)
    if config.gradient_checkpointing:  # the student's layers only (teachers never run backward)
        student.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    student = with_adapters(student, config, adapter)
    for name, teacher in loaded.items():
        if teacher is None:
            loaded[name] = student
        elif not isinstance(teacher, ServerTeacher):
            teacher.eval().requires_grad_(False)
    student.train()
    return student, [loaded[name] for name in options.teachers], tokenizer


def with_adapters(student, config: KDConfig, adapter: tuple[Path, str] | None):
    """The student with its SFT adapter continued, fresh LoRA adapters (lora_rank > 0), or as it is."""
    if adapter:
        from peft import PeftModel

        return PeftModel.from_pretrained(student, str(adapter[0]), is_trainable=True)
    if config.lora_rank:
        from peft import LoraConfig, get_peft_model

        return get_peft_model(
            student,
            LoraConfig(
                r=config.lora_rank,
                lora_alpha=lora_alpha(config),
                lora_dropout=0.0,
                target_modules=lora_targets(config),
                task_type="CAUSAL_LM",
            ),
        )
    return student


def lora_alpha(config: KDConfig) -> float:
    return config.lora_alpha or 2 * config.lora_rank


def lora_targets(config: KDConfig) -> list[str]:
    return [*LORA_TARGETS, *([UNEMBED] if config.lora_unembed else [])]


def sft_adapter(config: KDConfig, options: RunOptions) -> tuple[Path, str]:
    """(<student>/adapter, its base model) for lora_init sft_adapter; the adapter's rank, alpha and
    targets must be the ones asked for (continuing cannot change them)."""
    folder = Path(options.student) / ADAPTER
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise ValueError(f"lora_init sft_adapter: {config_path} not found (the student must be a LoRA SFT output)")
    adapter = json.loads(config_path.read_text(encoding="utf-8"))
    targets = adapter.get("target_modules") or []
    asked = {"r": config.lora_rank, "lora_alpha": lora_alpha(config), "target_modules": sorted(lora_targets(config))}
    found = {
        "r": adapter.get("r"),
        "lora_alpha": adapter.get("lora_alpha"),
        "target_modules": sorted([targets] if isinstance(targets, str) else targets),
    }
    if asked != found:
        raise ValueError(f"{config_path}: the SFT adapter has {found}, but this run asks for {asked}")
    return folder, adapter["base_model_name_or_path"]


def make_optimizer(trainable: list, config: KDConfig) -> torch.optim.Optimizer:
    """AdamW, weight decay 0, betas (0.9, adam_beta2) (Tinker's AdamParams: beta2 0.95)."""
    return torch.optim.AdamW(trainable, lr=config.lr, betas=(0.9, config.adam_beta2), weight_decay=0.0)
