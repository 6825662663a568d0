"""LLaMA-Factory's data preprocessing sized to the data: the defaults of a study's SFT that leaves
them out (a study's own values win, the motab study's are the release's).

- `preprocessing_num_workers`: one worker per 10,000 rows, at most the job's CPUs (SLURM's
  allocation, else the rule's threads: both come from config, so a resumed run writes the same YAML
  and resumes). Small sets tokenize in LLaMA-Factory's own process (forking costs more than it saves).
- `overwrite_cache: false`: the tokenized set `datasets` caches (HF_DATASETS_CACHE) is reused by a
  resumed run instead of tokenized again.
- `ddp_timeout`: every other rank waits in a collective while rank 0 tokenizes (LLaMA-Factory's
  main_process_first); Hugging Face's 1,800 s default ends a 1.2M-row tokenization with an NCCL
  timeout. 3,600 s plus one second per 50 rows covers a single worker at 50 rows/s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from motab.jobenv import job_cpus

ROWS_PER_WORKER = 10_000
BASE_TIMEOUT_S, ROWS_PER_SECOND = 3600, 50


def dataset_rows(dataset_dir: str, dataset: str) -> int:
    """Rows of the registered dataset's file (dataset_info.json's file_name, one JSON row a line); 0 if absent."""
    try:
        info = json.loads((Path(dataset_dir) / "dataset_info.json").read_text(encoding="utf-8"))
        path = Path(dataset_dir) / info[dataset]["file_name"]
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 22), b""))
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def job_threads(environ: Mapping[str, str]) -> int:
    """The CPUs of the job as config gave them: SLURM_CPUS_PER_TASK, else Snakemake's OMP_NUM_THREADS."""
    threads = environ.get("OMP_NUM_THREADS", "")
    return job_cpus(environ) or (int(threads) if threads.isdigit() and int(threads) > 0 else 1)


def preprocessing_defaults(rows: int, cpus: int) -> dict:
    return {
        "preprocessing_num_workers": max(1, min(cpus, rows // ROWS_PER_WORKER)),
        "overwrite_cache": False,
        "ddp_timeout": BASE_TIMEOUT_S + rows // ROWS_PER_SECOND,
    }


def for_dataset(dataset_dir: str, dataset: str, environ: Mapping[str, str] = os.environ) -> dict:
    return preprocessing_defaults(dataset_rows(dataset_dir, dataset), job_threads(environ))
