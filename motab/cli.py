"""`motab <command> [args]` (also `python -m motab`): one subcommand per pipeline stage.

Commands are imported lazily so `motab grade` does not pay for torch.
Each target module exposes `main(argv: list[str]) -> int`. A user's mistake (motab.errors.UserError,
a missing or unreadable file) ends the command with one line on stderr and exit status 1;
MOTAB_TRACEBACK=1 shows the traceback instead (for a bug report).
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

from motab import __version__
from motab.errors import UserError
from motab.jobenv import JobError, apply_job_threads

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "toy-problems": ("motab.toy.tasks", "generate the toy arithmetic problem set (LIMO shape)"),
    "toy-tokenizer": ("motab.toy.tokenizer", "train the toy BPE tokenizer with Qwen chat tokens"),
    "toy-pretrain": ("motab.toy.pretrain", "build and pretrain a toy Qwen3 model"),
    "prepare": ("motab.data.prepare", "normalise LIMO-shaped raw problems into problems.jsonl"),
    "benchmark": ("motab.data.benchmarks", "check a benchmark file (fields, count) into problems.jsonl"),
    "hub-download": ("motab.hubcache", "fetch one hub snapshot at its commit into the hub cache, checked"),
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
    "eval-grade": ("motab.evaluation.grade_responses", "grade responses and compute Pass@k/Avg@k/Maj@k"),
    "grade": ("motab.grading.grade_command", "grade any {id,response,gold} JSONL file"),
    "tables": ("motab.tables.build", "aggregate eval JSON into markdown/CSV/LaTeX tables"),
    "report-chart": ("motab.report.chart", "a table as a bar chart with error bars (PNG)"),
    "training-curves": ("motab.report.curves", "training curves from checkpoint folders (PNG)"),
    "cost": ("motab.report.cost", "a study's wall, CPU and GPU hours per stage from its benchmark files"),
    "plan-memory": ("motab.report.memory", "each GPU job's memory per GPU against resources.gpu_memory_gb (table)"),
    "env": ("motab.env", "versions of the stack, GPUs and hub reachability (paste into a bug report)"),
}
# file mistakes a user makes (a wrong path, a folder for a file, no permission); other OSErrors are not theirs
FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: motab <command> [args]   (or: python -m motab <command> [args])", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "motab <command> --help shows a command's options, defaults and an example.", "options:"]
    lines += ["  -h, --help  this list", "  --version   the version of motab"]
    return "\n".join(lines)


def one_line(error: BaseException) -> str:
    """A user's mistake as one line: the located message, or `path: reason` for a file error."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {(error.strerror or str(error)).lower()}"
    return str(error)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"motab {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"motab: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    apply_job_threads()  # in a SLURM job: threads follow SLURM_CPUS_PER_TASK, before torch loads
    try:
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.main(rest) or 0)
    except (UserError, JobError, *FILE_ERRORS) as error:  # JobError: what failed and which log to read
        if os.environ.get("MOTAB_TRACEBACK"):
            raise
        print(f"motab {name}: error: {one_line(error)}", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk or the file size limit: what and where, no traceback
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        print(f"motab {name}: {exc}", file=sys.stderr)
        return 1


def console_main() -> None:
    sys.exit(main(sys.argv[1:]))
