"""Per-benchmark sampling settings of a study's eval block (what rules/eval.smk passes on).

The study-wide values (n, temperature, top_p, max_tokens, batch_problems, and top_k where set)
with the benchmark's `per_benchmark` entry on top: the MOTAB release builds one EvalScope
TaskConfig per dataset (n = 1 for math_500, top_k for math_500 and gpqa_diamond only).
"""

from __future__ import annotations

from collections.abc import Mapping

KEYS = ("n", "temperature", "top_p", "max_tokens", "batch_problems")


def generation_settings(eval_cfg: Mapping, bench: str, seed: int) -> dict:
    """{n, temperature, top_p, max_tokens, batch_problems, [top_k], seed} of one benchmark."""
    settings = {key: eval_cfg[key] for key in KEYS}
    if "top_k" in eval_cfg:
        settings["top_k"] = eval_cfg["top_k"]
    return settings | dict(eval_cfg.get("per_benchmark", {}).get(bench, {})) | {"seed": int(seed)}


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
