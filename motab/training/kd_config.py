"""A kd block of config -> `motab kd-train` flags (kept free of torch: the Snakefile imports it)."""

from __future__ import annotations

CONFIG_FLAGS = ("loss", "steps", "prompts_per_step", "samples_per_prompt", "max_new_tokens", "temperature", "top_p",
                "top_k", "student_thinking", "teacher_thinking", "prompt_style", "mask_pad_tokens", "lr",
                "lr_schedule", "seed", "kl_discount", "jsd_beta", "distill_temperature", "skew_lambda", "akl_mu",
                "clip", "compat", "w_min", "pw_tau", "pw_s", "reopold_lambda", "reopold_beta", "reopold_t_switch",
                "lora_rank", "lora_alpha", "chunk_tokens", "grad_clip", "save_steps", "dtype", "eval_step",
                "micro_batch_prompts", "loss_average", "gradient_checkpointing",
                "lora_unembed", "lora_init", "adam_beta2", "prompt_order", "max_prompt_tokens")
RULE_KEYS = ("engine", "prompts", "teachers")   # read by rules/kd.smk (kd_sources), not kd-train flags
SELF = "self"   # a teacher that is the starting student itself (self-distillation)


def config_argv(cfg: dict) -> list[str]:
    """kd-train flags for a kd block of config (engine builtin): each key k becomes --k (with '-' for '_')."""
    unknown = sorted(set(cfg) - set(CONFIG_FLAGS) - set(RULE_KEYS))
    if cfg.get("engine", "builtin") != "builtin" or unknown:
        raise ValueError(f"kd config for the builtin trainer: unexpected engine {cfg.get('engine')!r} or keys {unknown}")
    return [part for key in CONFIG_FLAGS if key in cfg for part in (f"--{key.replace('_', '-')}", str(cfg[key]))]


def kd_sources(study: dict, run: dict) -> list[tuple[str, str, int | None]]:
    """(teacher, prompt dataset, prompts per step) of each teacher of a KD run.

    A kd block with `teachers` (Tinker's multi-teacher form) lists them; otherwise the one teacher is
    the run's `teacher` (else the study's), its prompts the block's `prompts` dataset (else the study's
    train_data), and its prompts per step the block's own prompts_per_step (None here: a kd-train flag).
    """
    cfg = study["kd"][run["kd"]]
    if "teachers" in cfg:
        return [(t["model"], t["prompts"], t["prompts_per_step"]) for t in cfg["teachers"]]
    return [(run.get("teacher", study["teacher"]), cfg.get("prompts", study["train_data"]), None)]


def kd_config_errors(config: dict) -> list[str]:
    """What the schema cannot say about kd blocks and KD runs: names that must exist, keys that exclude each other."""
    errors = []
    datasets, models = config.get("datasets", {}), config.get("models", {})
    for study_name, study in config.get("studies", {}).items():
        for name, cfg in study.get("kd", {}).items():
            where = f"studies.{study_name}.kd.{name}"
            if "prompts" in cfg and cfg["prompts"] not in datasets:
                errors.append(f"{where}.prompts: {cfg['prompts']!r} is not a dataset (datasets: {sorted(datasets)})")
            if "teachers" not in cfg:
                if cfg.get("engine") == "builtin" and "prompts_per_step" not in cfg:
                    errors.append(f"{where}: prompts_per_step is required (or teachers, each with its own)")
                continue
            if cfg.get("engine") != "builtin":
                errors.append(f"{where}.teachers: several teachers need engine builtin (KDFlow takes one teacher)")
            for key in ("prompts_per_step", "prompts"):
                if key in cfg:
                    errors.append(f"{where}.{key}: not used with teachers (each teacher names its prompts and "
                                  "prompts_per_step); remove it")
            for i, teacher in enumerate(cfg["teachers"]):
                if teacher["model"] != SELF and teacher["model"] not in models:
                    errors.append(f"{where}.teachers[{i}].model: {teacher['model']!r} is not a model "
                                  f"(models: {sorted(models)}, or 'self')")
                if teacher["prompts"] not in datasets:
                    errors.append(f"{where}.teachers[{i}].prompts: {teacher['prompts']!r} is not a dataset "
                                  f"(datasets: {sorted(datasets)})")
        for run_name, run in study.get("runs", {}).items():
            cfg = study.get("kd", {}).get(run.get("kd"), {})
            if "teachers" in cfg and "teacher" in run:
                errors.append(f"studies.{study_name}.runs.{run_name}.teacher: kd {run['kd']!r} names its teachers "
                              "(teachers:); remove the run's teacher")
    return errors
