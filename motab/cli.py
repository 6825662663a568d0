"""`python -m motab <command> [args]`: one subcommand per pipeline stage.

Commands are imported lazily so `python -m motab grade` does not pay for torch.
Each target module exposes `main(argv: list[str]) -> int`.
"""

from __future__ import annotations

import importlib

from motab.jobenv import apply_job_threads

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "toy-problems": ("motab.toy.tasks", "generate the toy arithmetic problem set (LIMO shape)"),
    "toy-tokenizer": ("motab.toy.tokenizer", "train the toy BPE tokenizer with Qwen chat tokens"),
    "toy-pretrain": ("motab.toy.pretrain", "build and pretrain a toy Qwen3 model"),
    "prepare": ("motab.data.prepare", "normalise LIMO-shaped raw problems into problems.jsonl"),
    "benchmark": ("motab.data.benchmarks", "check a benchmark file (fields, count) into problems.jsonl"),
    "kd-prompts": ("motab.data.kd_prompts", "problems -> KDFlow prompt file"),
    "synth": ("motab.synthesis.run", "synthesise trajectories over HTTP"),
    "data-card": ("motab.synthesis.card", "a synthesized dataset's card: share right, authorship, lengths vs budgets"),
    "synth-filter": ("motab.synthesis.cot_filter", "drop bad CoTs from a synth file (CoT-filter rules)"),
    "reorganize": ("motab.data.reorganize", "synth file -> LLaMA-Factory alpaca data + dataset_info"),
    "sft": ("motab.training.sft", "write the LLaMA-Factory YAML and run llamafactory-cli train"),
    "kd-train": ("motab.training.kd.command", "built-in on-policy distillation trainer"),
    "kdflow": ("motab.training.kdflow", "write KDFlow's command line, start Ray on the allocation, run KDFlow"),
    "serve": ("motab.serving.server", "embedded SGLang/OpenAI-compatible inference server"),
    "eval-generate": ("motab.evaluation.generate", "sample n responses per problem over HTTP"),
    "eval-evalscope": (
        "motab.evaluation.evalscope_engine",
        "sample through EvalScope (OpenAI endpoint) into responses",
    ),
    "eval-critic": ("motab.evaluation.critic", "an LLM judge's score of every response in an eval JSON"),
    "eval-grade": ("motab.evaluation.score", "grade responses and compute Pass@k/Avg@k/Maj@k"),
    "grade": ("motab.evaluation.grade_file", "grade any {id,response,gold} JSONL file"),
    "tables": ("motab.tables.build", "aggregate eval JSON into markdown/CSV/LaTeX tables"),
    "report-chart": ("motab.report.chart", "a table as a bar chart with error bars (PNG)"),
    "training-curves": ("motab.report.curves", "training curves from checkpoint folders (PNG)"),
    "cost": ("motab.report.cost", "a study's wall, CPU and GPU hours per stage from its benchmark files"),
    "plan-memory": ("motab.report.memory", "each GPU job's memory per GPU against resources.gpu_memory_gb (table)"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: python -m motab <command> [args]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}\n\n{usage()}")
        return 2
    apply_job_threads()  # in a SLURM job: threads follow SLURM_CPUS_PER_TASK, before torch loads
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


def console_main() -> None:
    import sys

    sys.exit(main(sys.argv[1:]))
