"""Per-benchmark sampling settings of a study's eval block (what rules/eval.smk passes on).

The study-wide values (n, temperature, top_p, max_tokens, batch_problems, and top_k where set)
with the benchmark's `per_benchmark` entry on top: the MOTAB release builds one EvalScope
TaskConfig per dataset (n = 1 for math_500, top_k for math_500 and gpqa_diamond only).
"""

from __future__ import annotations

from collections.abc import Mapping

KEYS = ("n", "temperature", "top_p", "max_tokens", "batch_problems")
# tokens kept for the prompt (chat template included) when max_tokens is capped to a model's context:
# SGLang rejects a request whose prompt + max_new_tokens reaches the context length
PROMPT_TOKENS = 2048


def generation_settings(eval_cfg: Mapping, bench: str, seed: int) -> dict:
    """{n, temperature, top_p, max_tokens, batch_problems, [top_k], seed} of one benchmark."""
    settings = {key: eval_cfg[key] for key in KEYS}
    if "top_k" in eval_cfg:
        settings["top_k"] = eval_cfg["top_k"]
    return settings | dict(eval_cfg.get("per_benchmark", {}).get(bench, {})) | {"seed": int(seed)}


def fit_to_context(settings: dict, context_length: int | None, prompt_tokens: int = PROMPT_TOKENS) -> dict:
    """`settings` with max_tokens capped so that a prompt of `prompt_tokens` plus the generation stays
    inside the model's context (models.<name>.context_length); unchanged where it fits or is unknown."""
    if context_length is None:
        return settings
    return settings | {"max_tokens": min(settings["max_tokens"], max(1, context_length - prompt_tokens))}


def context_notes(study: str, eval_cfg: Mapping, models: Mapping, run_models: Mapping[str, str]) -> list[str]:
    """One line per model of a study's eval whose context caps the eval's max_tokens (printed at plan time)."""
    prompt = eval_cfg.get("prompt_tokens", PROMPT_TOKENS)
    notes = []
    for model in sorted(set(run_models.values())):
        context = models.get(model, {}).get("context_length")
        asked = max(generation_settings(eval_cfg, bench, 0)["max_tokens"] for bench in eval_cfg["benchmarks"])
        if context is not None and asked + prompt > context:
            notes.append(
                f"studies.{study}.eval.max_tokens {asked} + {prompt} prompt tokens exceed models.{model}."
                f"context_length {context}: its eval jobs generate at most {max(1, context - prompt)} tokens "
                f"(eval.prompt_tokens sets the prompt's share)"
            )
    return notes


def evalscope_dataset_args(eval_cfg: Mapping, bench_cfg: Mapping) -> dict:
    """EvalScope dataset_args beyond dataset_id: the study's (filters, aggregation), then the benchmark's."""
    return dict(eval_cfg.get("evalscope_args", {})) | dict(bench_cfg.get("evalscope_args", {}))


def per_benchmark_errors(study: str, eval_cfg: Mapping) -> list[str]:
    """A `per_benchmark` entry naming no benchmark of the study's eval would silently do nothing."""
    return [
        f"studies.{study}.eval.per_benchmark.{bench}: not a benchmark of the study's eval "
        f"(benchmarks: {list(eval_cfg['benchmarks'])})"
        for bench in eval_cfg.get("per_benchmark", {})
        if bench not in eval_cfg["benchmarks"]
    ]
