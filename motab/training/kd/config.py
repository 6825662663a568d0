"""KDConfig: every knob of a built-in KD run, typed, with its default and checks (torch-free).

A kd block of config (engine builtin) is a KDConfig: its general keys are the fields below, its
loss's keys the fields of that loss's params dataclass (motab.training.kd.objectives), read into
`loss_params`. The keys the workflow resolves itself (RULE_KEYS: engine, prompts, teachers) are not
training knobs and are skipped. `as_dict` gives the flat form back: kd-train writes it as
kd_config.json into the checkpoint, and `motab kd-train --config kd_config.json` reads it.
Where a run happens (student, teachers, prompt files, output, threads, tracking) is not part of
it: those are kd-train's runtime flags (motab.training.kd.command.RunOptions).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from motab.config_check import SELF
from motab.errors import UserError
from motab.training.kd.objectives import LOSSES, FieldError, check, knob

RULE_KEYS = ("engine", "prompts", "teachers")  # resolved by the workflow (rules/kd.smk), not training knobs
PROMPT_STYLES = ("opsd", "pwopsd")
LORA_INITS = ("fresh", "sft_adapter")
DTYPES = ("float32", "bfloat16")
REQUIRED = dataclasses.MISSING


class ConfigError(UserError):
    """A bad KD config, naming where it was read and the field."""


def required(help: str) -> Any:
    return field(metadata={"help": help, "choices": None})


@dataclass(frozen=True)
class KDConfig:
    """The training knobs of one built-in KD run (a kd block of config, engine builtin)."""

    loss: str = required("the objective: a name in motab.training.kd.objectives.LOSSES")
    steps: int = required("optimizer steps")
    samples_per_prompt: int = required("rollouts sampled per prompt")
    max_new_tokens: int = required("most tokens of a rollout's response")
    temperature: float = required("sampling temperature of the rollouts")
    lr: float = required("AdamW learning rate (its peak with lr_schedule linear)")
    seed: int = required("seed of the prompt order and of sampling")
    prompts_per_step: int | None = knob(None, "prompts a step takes (one teacher; several: each teacher's own)")
    top_p: float = knob(1.0, "rollout nucleus sampling (1 = none)")
    top_k: int = knob(0, "rollout top-k sampling (0 = none)")
    student_thinking: bool | None = knob(None, "enable_thinking of the student's chat template (default: its own)")
    teacher_thinking: bool | None = knob(None, "enable_thinking of the self-teacher's chat template")
    prompt_style: str = knob(
        "opsd",
        "self-distillation prompts: opsd (OPSD's teacher wording) or pwopsd (the "
        "PW-OPSD release's student and teacher messages)",
        PROMPT_STYLES,
    )
    mask_pad_tokens: bool = knob(False, "leave response tokens equal to the pad token out of the loss (PW-OPSD)")
    lr_schedule: str = knob("constant", "constant, or linear decay to 0 over steps", ("constant", "linear"))
    loss_average: str = knob(
        "step",
        "step: the loss over the step's batch; micro_batch: the mean of each "
        "micro-batch's own loss (transformers' gradient accumulation)",
        ("step", "micro_batch"),
    )
    lora_rank: int = knob(0, "train LoRA adapters of this rank (0 = full weights)")
    lora_alpha: float = knob(0.0, "LoRA alpha (0 = 2 x rank, as OPSD's 64/128)")
    lora_unembed: bool = knob(False, "LoRA on the unembedding (lm_head) too, as Tinker's train_unembed")
    lora_init: str = knob("fresh", "fresh adapters, or sft_adapter: continue <student>/adapter", LORA_INITS)
    adam_beta2: float = knob(0.999, "AdamW beta2 (Tinker: 0.95)")
    prompt_order: str = knob("shuffled", "shuffled by seed, or the prompt file's order (Tinker)", ("shuffled", "file"))
    max_prompt_tokens: int = knob(0, "cut each user message to its first N tokens (Tinker: 1024; 0 = no cut)")
    chunk_tokens: int = knob(1024, "tokens per chunk of logits")
    micro_batch_prompts: int = knob(0, "prompts per generate call and forward/backward (0 = a process's share)")
    gradient_checkpointing: bool = knob(False, "recompute each student layer in backward")
    dtype: str = knob("float32", "weights and activations of both models (losses stay float32)", DTYPES)
    teacher_server: bool = knob(
        False,
        "score with the teacher behind its inference server (SGLang /generate log-probabilities of the "
        "sampled tokens) instead of loading it beside the student; losses reading only those (rkl_onpolicy)",
    )
    grad_clip: float = knob(1.0, "max gradient norm (0 = no clipping)")
    save_steps: int = knob(0, "resumable state every K steps (0 = never)")
    eval_step: int = knob(0, "the step whose weights become the output checkpoint (0 = the last)")
    loss_params: Any = field(
        default=None, metadata={"help": "the loss's own knobs (its params dataclass)", "choices": None}
    )

    def __post_init__(self):
        check(self.loss in LOSSES, "loss", f"expected one of {', '.join(LOSSES)}, found {self.loss!r}")
        params = LOSSES[self.loss].params
        if self.loss_params is None:
            object.__setattr__(self, "loss_params", params())
        check(
            isinstance(self.loss_params, params),
            "loss_params",
            f"loss {self.loss} takes {params.__name__}, found {type(self.loss_params).__name__}",
        )
        for name in ("steps", "samples_per_prompt", "max_new_tokens", "chunk_tokens"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, found {getattr(self, name)}")
        check(self.prompts_per_step is None or self.prompts_per_step >= 1, "prompts_per_step", "must be >= 1")
        check(self.temperature > 0, "temperature", "must be > 0")
        check(0 < self.top_p <= 1, "top_p", "must lie in (0, 1]")
        check(self.top_k >= 0, "top_k", "must be >= 0")
        check(
            not LOSSES[self.loss].full_sampling or (self.top_p == 1 and self.top_k == 0),
            "top_p",
            f"{self.loss} needs untruncated sampling (top_p 1, top_k 0): its sampler log-probabilities are "
            "the student's full distribution at the sampling temperature",
        )
        for name in ("lora_rank", "lora_alpha", "micro_batch_prompts", "max_prompt_tokens", "save_steps"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, found {getattr(self, name)}")
        check(0 <= self.eval_step <= self.steps, "eval_step", f"must lie in [0, steps = {self.steps}]")
        check(0 <= self.adam_beta2 < 1, "adam_beta2", "must lie in [0, 1)")
        check(self.lora_init == "fresh" or self.lora_rank > 0, "lora_init", "sft_adapter needs lora_rank > 0")
        check(
            not self.teacher_server or LOSSES[self.loss].sampled_tokens_only,
            "teacher_server",
            f"loss {self.loss} reads the teacher's full distribution at every token, a server returns the "
            "log-probability of each sampled token only (rkl_onpolicy); use teacher_server false or engine kdflow",
        )
        for f in dataclasses.fields(self):
            if f.metadata.get("choices") and getattr(self, f.name) not in f.metadata["choices"]:
                raise FieldError(f.name, f"expected one of {f.metadata['choices']}, found {getattr(self, f.name)!r}")

    def as_dict(self) -> dict:
        """The flat form (general fields and the loss's own), sorted by key: kd_config.json."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "loss_params"}
        return dict(sorted((flat | dataclasses.asdict(self.loss_params)).items()))

    @classmethod
    def from_dict(cls, values: dict, where: str = "kd config") -> KDConfig:
        """A KDConfig from a kd block / kd_config.json; errors name `where` and the field."""
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: expected an object of KD settings, found {type(values).__name__}")
        try:
            loss = values.get("loss")
            check(loss in LOSSES, "loss", f"expected one of {', '.join(LOSSES)}, found {loss!r}")
            params = LOSSES[loss].params
            general = {f.name: f for f in dataclasses.fields(cls) if f.name != "loss_params"}
            own = {f.name: f for f in dataclasses.fields(params)}
            unknown = sorted(set(values) - set(general) - set(own) - set(RULE_KEYS))
            for key in unknown:
                others = sorted(
                    n for n, entry in LOSSES.items() if key in {f.name for f in dataclasses.fields(entry.params)}
                )
                raise FieldError(
                    key,
                    f"not a setting of loss {loss}"
                    + (
                        f" (it is one of {', '.join(others)})"
                        if others
                        else f"; known: {', '.join(sorted({*general, *own}))}"
                    ),
                )
            for name, f in general.items():
                if f.default is REQUIRED and name not in values:
                    raise FieldError(name, "required")
            typed = {
                k: typed_value(k, v, f.type) for k, v in values.items() for f in [general.get(k) or own.get(k)] if f
            }
            loss_params = params(**{k: v for k, v in typed.items() if k in own and k not in general})
            return cls(**{k: v for k, v in typed.items() if k in general}, loss_params=loss_params)
        except FieldError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> KDConfig:
        """kd_config.json (or any JSON object of KD settings)."""
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read a KD config: {exc}") from None
        return cls.from_dict(values, str(path))


def typed_value(name: str, value: Any, annotation: str) -> Any:
    """value checked against a field's annotation ("int", "float", "bool", "str", "X | None");
    an integer is taken for a float (YAML and JSON write 10 for 10.0)."""
    kinds = [part.strip() for part in str(annotation).split("|")]
    if value is None:
        check("None" in kinds, name, "expected a value, found null")
        return None
    kind = kinds[0]
    if kind == "bool":
        check(isinstance(value, bool), name, f"expected true or false, found {value!r}")
    elif kind == "int":
        check(isinstance(value, int) and not isinstance(value, bool), name, f"expected an integer, found {value!r}")
    elif kind == "float":
        check(
            isinstance(value, (int, float)) and not isinstance(value, bool), name, f"expected a number, found {value!r}"
        )
        return float(value)
    elif kind == "str":
        check(isinstance(value, str), name, f"expected a string, found {value!r}")
    return value


@dataclass(frozen=True)
class RunOptions:
    """Where one run happens: kd-train's runtime flags (not training knobs; not in kd_config.json)."""

    student: str  # the starting HF checkpoint folder
    teachers: tuple[str, ...]  # checkpoint folders, or SELF; one per prompt source
    prompts: tuple[str, ...]  # KDFlow prompt JSONL of the teacher in the same place
    prompts_per_step: tuple[int, ...]  # prompts a step takes from each source
    output: str  # the finished checkpoint's folder
    log_csv: str | None = None  # progress CSV written as training goes
    threads: int = 2  # torch CPU threads
    tracking: str | None = None  # tensorboard | wandb (motab.tracking)
    tracking_dir: str | None = None
    tracking_project: str | None = None
    params: dict = field(default_factory=dict)  # config values this run depends on (provenance)
    teacher_urls: tuple[str, ...] = ()  # teacher_server: each teacher's server, aligned with teachers

    def __post_init__(self):
        counts = {
            "teacher": len(self.teachers),
            "prompts": len(self.prompts),
            "prompts-per-step": len(self.prompts_per_step),
        }
        if len(set(counts.values())) != 1:
            raise ConfigError(
                "give --teacher, --prompts and --prompts-per-step (or the config's prompts_per_step, "
                "one teacher) once per teacher; found " + ", ".join(f"{n} --{k}" for k, n in counts.items())
            )
        check(min(self.prompts_per_step) >= 1, "prompts_per_step", f"must be >= 1, found {min(self.prompts_per_step)}")
        check(self.threads >= 1, "threads", f"must be >= 1, found {self.threads}")


def check_run(config: KDConfig, options: RunOptions) -> None:
    """What neither side can check alone."""
    check(
        not config.teacher_server or SELF not in options.teachers,
        "teacher_server",
        "teacher self is the student itself, scored in-process; use teacher_server false",
    )
    check(
        not options.teacher_urls or config.teacher_server,
        "teacher_server",
        "--teacher-url is given but teacher_server is false (the teacher would be loaded in-process)",
    )
    check(
        not options.teacher_urls or len(options.teacher_urls) == len(options.teachers),
        "teacher_urls",
        f"give --teacher-url once per --teacher ({len(options.teachers)}), found {len(options.teacher_urls)}",
    )
    check(
        config.lora_init == "fresh" or SELF not in options.teachers,
        "lora_init",
        "sft_adapter with teacher self: the adapters-off teacher would be the base model, not the SFT student",
    )
