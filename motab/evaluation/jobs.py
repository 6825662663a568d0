"""`--jobs-json` of the generation commands: several (benchmark, seed) jobs served by ONE server
start (a run's benchmarks x seeds in one SLURM job), each with its own files and sampling."""

from __future__ import annotations

import argparse
import json


def parse_jobs(
    text: str, defaults: argparse.Namespace, keys: tuple[str, ...], required: tuple[str, ...]
) -> list[argparse.Namespace]:
    """A JSON list of {required keys, and any of `keys`}; keys a job leaves out take the flags'
    values (`defaults`). A bad entry is named by its index; two jobs may not share an output."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--jobs-json: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"--jobs-json: expected a non-empty list of {{{', '.join(required)}, ...}} objects")
    jobs = []
    for index, job in enumerate(raw):
        unknown = sorted(set(job) - set(keys)) if isinstance(job, dict) else ["(not an object)"]
        if unknown or any(key not in job for key in required):
            raise ValueError(
                f"--jobs-json[{index}]: needs {', '.join(required)}, known keys {', '.join(keys)}; unknown {unknown}"
            )
        jobs.append(argparse.Namespace(**{**vars(defaults), **job}))
    outputs = [job.output for job in jobs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("--jobs-json: two jobs write the same output")
    return jobs
