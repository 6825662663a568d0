"""A kd block of config -> `motab kd-train` flags (kept free of torch: the Snakefile imports it)."""

from __future__ import annotations

CONFIG_FLAGS = ("loss", "steps", "prompts_per_step", "samples_per_prompt", "max_new_tokens", "temperature", "lr",
                "seed", "kl_discount", "jsd_beta", "distill_temperature", "skew_lambda", "akl_mu", "clip", "clip_mode",
                "w_min", "pw_tau", "pw_s", "reward_floor", "reopold_keep_fraction", "lora_rank", "lora_alpha",
                "chunk_tokens", "grad_clip", "save_steps", "dtype", "eval_step")
RULE_KEYS = ("engine", "prompts", "teachers")   # read by rules/kd.smk, not kd-train flags


def config_argv(cfg: dict) -> list[str]:
    """kd-train flags for a kd block of config (engine builtin): each key k becomes --k (with '-' for '_')."""
    unknown = sorted(set(cfg) - set(CONFIG_FLAGS) - set(RULE_KEYS))
    if cfg.get("engine", "builtin") != "builtin" or unknown:
        raise ValueError(f"kd config for the builtin trainer: unexpected engine {cfg.get('engine')!r} or keys {unknown}")
    return [part for key in CONFIG_FLAGS if key in cfg for part in (f"--{key.replace('_', '-')}", str(cfg[key]))]
