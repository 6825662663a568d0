"""Built-in on-policy distillation trainer (`motab kd-train`).

Settings come in two kinds. The training knobs are a KDConfig (motab.training.kd.config: types,
defaults, checks): read from `--config FILE` (a YAML or JSON object such as a checkpoint's kd_config.json,
or a kd block of config) and/or `--config-json STRING` (what rules/kd.smk passes: the study's kd
block), each then overridden by its flag (`--loss`, `--steps`, ... one per field, `_` as `-`;
booleans as true/false). Where the run happens is runtime flags: --student, --teacher / --prompts /
--prompts-per-step (once per teacher), --output, --threads, --log-csv, --tracking*.
To rerun a checkpoint's training by hand:
    motab kd-train --config <ckpt>/kd_config.json --student S --teacher T --prompts P --output O

Each step:
  1. take the next B prompts (a fixed order shuffled by seed, or with prompt_order file the file's
     order as Tinker's PromptOnlyDataset; cycled), each user message cut to its first
     max_prompt_tokens tokens (Tinker: 1,024; 0 = no cut), rendered with the student's chat template;
  2. sample n rollouts per prompt from the current student in-process (model.generate, do_sample at
     temperature, top_p, top_k; stop at the tokenizer's eos; student_thinking / teacher_thinking set
     the chat template's enable_thinking);
  3. score the same tokens with the frozen teacher (no_grad, same tokenizer). With teacher `self`
     (on-policy self-distillation) the teacher is the starting student (a frozen copy, or with
     lora_rank the same network with its adapters off) scoring the response after a privileged
     prompt with the row's reference "solution" (OPSD's wording; prompt_style pwopsd: the PW-OPSD
     release's, motab.training.kd.prompts);
     With teacher_server the teacher is not loaded: its inference server (--teacher-url, or one this
     command starts on the job's GPUs: --teacher-server-command, --placement) returns the
     log-probability of each sampled token (SGLang /generate, return_logprob), all that
     rkl_onpolicy reads (motab.training.kd.teacher_server);
  4. minimise the loss over the response tokens (prompt and padding masked; the eos the student
     produced is part of the response): the objective named by `loss` in the registry
     motab.training.kd.objectives (rkl_onpolicy: Tinker's per-token reverse-KL advantage loss;
     rkl|fkl|jsd|skl|srkl|akl: full-vocabulary divergences; opsd|eopd|pwopsd|reopold: the PW-OPSD
     release's objectives, METHODS.md "Self-distillation losses");
  5. AdamW (weight decay 0, betas 0.9 / adam_beta2), lr_schedule constant or linear decay to 0,
     gradient-norm clip grad_clip (0 = none); one optimizer step per batch of rollouts.
LoRA (lora_rank r): adapters on every linear layer of the blocks (+ lm_head with lora_unembed), scale
lora_alpha / r; lora_init sft_adapter continues a LoRA SFT output's <student>/adapter.

Logged per step: step, loss, kl_to_teacher (mean over response tokens of log p_S - log p_T at
temperature 1, before the update), rollout_tokens. The checkpoint holds them as training_log.csv;
--log-csv also writes them as training goes, with each step's seconds. Deterministic for a fixed
seed on CPU. Several teachers (Tinker's multi-teacher distillation): repeat --teacher, --prompts and
--prompts-per-step once per teacher; a step concatenates each teacher's prompts in flag order, each
rollout is scored by its prompt's teacher, and each teacher's loss is weighted by its share of the
batch's loss units; the progress CSV gets one kl_to_teacher_<i> column per teacher.
save_steps K: resumable state in <output>.partial/step-N every K steps, and after the step in which
SIGTERM or SIGUSR1 arrived (then the run stops); a rerun resumes from the newest (docs/resume.md). eval_step K < steps: the checkpoint holds the weights after step K (PW-OPSD: 150 steps, step
100 evaluated). Several processes (one per GPU; accelerate launch or torchrun, and by itself in a
SLURM job with several GPUs, see processes.py) each take an equal share of every teacher's prompts;
micro_batch_prompts K samples and back-propagates K prompts at a time (loss_average step weighs
each micro-batch by its share of the step's loss units; micro_batch: each the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex

from motab.commandline import command_parser
from motab.errors import UserError
from motab.serving.launch import LOCAL_SERVER
from motab.settings_file import settings_in_file, settings_in_json
from motab.training.kd.config import KDConfig, RunOptions, check_run
from motab.training.kd.objectives import LOSSES, FieldError

KIND = {"int": int, "float": float, "str": str}


def yes_no(text: str) -> bool:
    """A boolean flag value: true/false (any case)."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, found {text!r}")
    return text.lower() == "true"


def setting_fields() -> dict[str, dataclasses.Field]:
    """Every KD setting a flag may set: KDConfig's fields and every registered loss's params (first wins)."""
    fields = {f.name: f for f in dataclasses.fields(KDConfig) if f.name not in ("loss_params", "prompts_per_step")}
    for loss in LOSSES.values():
        for f in dataclasses.fields(loss.params):
            fields.setdefault(f.name, f)
    return fields


def add_setting_flags(p: argparse.ArgumentParser) -> None:
    """One flag per setting (absent unless given: the config's value or the default holds)."""
    group = p.add_argument_group("KD settings (override --config; defaults: motab.training.kd.config)")
    for name, f in setting_fields().items():
        kind = str(f.type).split("|")[0].strip()
        choices = tuple(LOSSES) if name == "loss" else f.metadata.get("choices")
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=yes_no if kind == "bool" else KIND[kind],
            choices=choices,
            default=argparse.SUPPRESS,
            help=setting_help(f),
        )


def setting_help(f: dataclasses.Field) -> str:
    """A setting's help with its default (the flag's own default is SUPPRESS: absent, the config's
    value holds), or "required" where the config must give it."""
    text = (f.metadata.get("help") or "").replace("%", "%%")
    if "default" in text.lower():
        return text  # the help says it
    if f.default is None:
        return f"{text} (default: unset)".strip()
    if f.default is dataclasses.MISSING:
        return f"{text} (required: in --config or this flag)".strip()
    default = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)  # as the flag takes it
    return f"{text} (default: {default.replace('%', '%%')})".strip()


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """teacher_server's runtime flags: a running server's URL, or the one this command starts."""
    server = p.add_argument_group("teacher_server: the teacher behind its inference server")
    server.add_argument(
        "--teacher-url",
        action="append",
        help="a running server of the teacher (SGLang protocol), once per --teacher; else one is started",
    )
    server.add_argument(
        "--teacher-server-command",
        default=LOCAL_SERVER,
        help="server command template ({python} {model} {host} {port}) started for the teacher "
        "(default: the embedded server)",
    )
    server.add_argument("--teacher-server-log", help="the started server's log (default: <output>.teacher.log)")
    server.add_argument(
        "--placement",
        help="JSON: the job's GPUs of the teacher's server (role teacher) and of the training processes "
        "(role trainer), motab.serving.placement",
    )
    server.add_argument("--server-timeout", type=float, default=1800.0, help="seconds for the server to start")


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "kd-train",
        __doc__,
        "motab kd-train --config kd.json --student results/toy/models/toy-student --teacher results/toy/models/toy-teacher --prompts results/toy/kd_data/toy.jsonl --prompts-per-step 8 --output ckpt/kd_rkl",
    )
    p.add_argument("--config", help="YAML or JSON file of KD settings (a checkpoint's kd_config.json, or a kd block)")
    p.add_argument(
        "--config-json",
        help="the same as a JSON string (rules/kd.smk: the study's kd block); "
        "also the run's provenance params unless --params-json",
    )
    p.add_argument("--student", required=True, help="HF checkpoint folder of the student")
    p.add_argument(
        "--teacher",
        required=True,
        action="append",
        help="HF checkpoint folder of the teacher (frozen; same tokenizer), or 'self' (rows need "
        '"solution"); repeat with --prompts and --prompts-per-step once per teacher',
    )
    p.add_argument(
        "--prompts",
        required=True,
        action="append",
        help="KDFlow prompt JSONL: {id, messages, answer, solution} (of the teacher in the same place)",
    )
    p.add_argument(
        "--prompts-per-step",
        type=int,
        action="append",
        help="prompts a step takes from these prompts (default: the config's prompts_per_step)",
    )
    p.add_argument("--output", required=True, help="folder for the trained HF checkpoint")
    p.add_argument(
        "--log-csv",
        help="progress CSV written as training goes (the checkpoint's training_log.csv "
        "has the same rows without seconds)",
    )
    p.add_argument(
        "--threads",
        type=int,
        # the job's share of its CPUs: OMP_NUM_THREADS, set from SLURM_CPUS_PER_TASK in a SLURM job
        # (motab.jobenv) and from the rule's threads by Snakemake locally
        default=int(os.environ.get("OMP_NUM_THREADS") or 2),
        help="torch CPU threads (default: OMP_NUM_THREADS, else 2)",
    )
    p.add_argument(
        "--tracking",
        choices=("tensorboard", "wandb"),
        default=None,
        help="also log each step's scalars to TensorBoard or wandb (motab.tracking)",
    )
    p.add_argument("--tracking-dir", default=None, help="TensorBoard event / wandb folder")
    p.add_argument("--tracking-project", default=None, help="wandb project")
    p.add_argument("--params-json", help="config values this run depends on (for provenance)")
    add_server_flags(p)
    add_setting_flags(p)
    return p


def parse_args(argv: list[str]) -> tuple[KDConfig, RunOptions]:
    """(the run's KDConfig, its runtime options) from kd-train's command line; a bad setting exits with
    an error naming where it was read and the field."""
    p = parser()
    try:
        return read_run(vars(p.parse_args(argv)))
    except (UserError, OSError) as exc:
        p.error(str(exc))


def read_run(args: dict) -> tuple[KDConfig, RunOptions]:
    """(KDConfig, RunOptions) from parsed flags: --config, then --config-json, then each setting's flag."""
    fields, values, where = setting_fields(), {}, []
    if args["config"]:
        values |= settings_in_file(args["config"], "KD")
        where.append(args["config"])
    if args["config_json"]:
        values |= settings_in_json(args["config_json"], "--config-json")
        where.append("--config-json")
    flags = {k: v for k, v in args.items() if k in fields}
    per_step = args["prompts_per_step"]
    if not per_step and values.get("prompts_per_step") is None:
        raise FieldError("prompts_per_step", "required (in the config, or --prompts-per-step once per teacher)")
    if per_step and len(args["teacher"]) == 1:
        flags["prompts_per_step"] = per_step[0]
    config = KDConfig.from_dict(values | flags, " + ".join([*where, "flags"]))
    params = (
        settings_in_json(args["params_json"], "--params-json")
        if args["params_json"]
        else settings_in_json(args["config_json"] or "{}", "--config-json")
    )
    options = RunOptions(
        student=args["student"],
        teachers=tuple(args["teacher"]),
        prompts=tuple(args["prompts"]),
        prompts_per_step=tuple(per_step or [config.prompts_per_step]),
        output=args["output"],
        log_csv=args["log_csv"],
        threads=args["threads"],
        tracking=args["tracking"],
        tracking_dir=args["tracking_dir"],
        tracking_project=args["tracking_project"],
        params=params,
        teacher_urls=tuple(args["teacher_url"] or ()),
    )
    check_run(config, options)
    return config, options


def main(argv: list[str]) -> int:
    import torch

    from motab.children import die_with_snakemake, run_child
    from motab.jobenv import announce_gpus, child_env, thread_env
    from motab.training.kd.loop import train
    from motab.training.kd.processes import accelerate_command
    from motab.training.kd.teacher_server import started_teacher
    from motab.training.slurm_env import torchrun_env

    config, options = parse_args(argv)
    die_with_snakemake()  # a SIGKILLed Snakemake leaves no training behind (motab.children)
    if config.teacher_server and not options.teacher_urls:
        # start the teacher's server on its GPUs, then run this command again with its URL
        if len(set(options.teachers)) > 1:
            raise SystemExit(
                "motab kd-train: teacher_server starts one teacher's server; give --teacher-url per teacher"
            )
        flags = parser().parse_args(argv)
        log = flags.teacher_server_log or f"{options.output}.teacher.log"
        server = started_teacher(
            options.teachers[0], flags.teacher_server_command, log, flags.placement, flags.server_timeout
        )
        with server as url:
            return main([*argv, *[a for _ in options.teachers for a in ("--teacher-url", url)]])
    if os.environ.get("LOCAL_RANK", "0") == "0":  # once per node, not per process
        announce_gpus(torch.cuda.device_count())
    if (command := accelerate_command(os.environ, argv, torch.cuda.device_count())) is not None:
        # several GPUs in this SLURM job: one process per GPU, each with its share of the job's CPUs
        print("launching:", shlex.join(command), flush=True)
        per_node = int(torchrun_env(os.environ, torch.cuda.device_count())["NPROC_PER_NODE"])
        code, _ = run_child(command, child_env() | thread_env(os.environ, per_node))  # dies with this job
        return code
    train(config, options)
    return 0
