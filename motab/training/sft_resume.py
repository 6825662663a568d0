"""Which checkpoint a `motab sft` rerun resumes from, under the resume contract (motab.resume_contract).

A killed run's `.<name>.tmp` folder holds resume_key.json: the LLaMA-Factory arguments (less those
that only say how often to save or how many workers load data), the number of training processes,
and fingerprints of the start model's files, the dataset folder and the DeepSpeed config. A rerun
resumes from the newest complete checkpoint-N only where its own key is the same; otherwise it
stops with one line naming each changed setting and the folder to remove; nothing is deleted
without a word. A checkpoint saved with `save_only_model: true` holds no optimizer, scheduler or
RNG state: resuming it would train another model than an uninterrupted run, so the rerun refuses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from motab.resume_contract import (
    folder_sha256,
    model_fingerprint,
    optional_sha256,
    read_key,
    refuse_if_changed,
    write_key,
)

CHECKPOINT = "checkpoint-"
# arguments that change how often state is saved or how data is loaded, not the trained bytes
RESUME_FREE = (
    "save_steps",
    "save_total_limit",
    "report_to",
    "preprocessing_num_workers",
    "dataloader_num_workers",
    "ddp_timeout",
    "overwrite_cache",
)


def sft_key(train_cfg: dict, model: str, dataset_dir: str, processes: int) -> dict:
    """Everything that decides an SFT checkpoint's bytes."""
    return {
        "llamafactory": {k: v for k, v in sorted(train_cfg.items()) if k not in RESUME_FREE},
        "processes": processes,
        "model_files": model_fingerprint(model),
        "dataset_sha256": folder_sha256(dataset_dir),
        "deepspeed_sha256": optional_sha256(train_cfg.get("deepspeed")),
    }


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest <folder>/checkpoint-N that LLaMA-Factory finished writing (trainer_state.json present)."""
    found = [
        (int(p.name[len(CHECKPOINT) :]), p)
        for p in folder.glob(CHECKPOINT + "*")
        if p.name[len(CHECKPOINT) :].isdigit() and (p / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


def weights_only(checkpoint: Path) -> bool:
    """True for a checkpoint without optimizer state (save_only_model: true); DeepSpeed keeps its
    optimizer state under global_step*/ instead of optimizer.pt."""
    return not (checkpoint / "optimizer.pt").is_file() and not any(checkpoint.glob("global_step*"))


def resumable_checkpoint(work: Path, trained: Path, key: dict) -> Path | None:
    """The checkpoint under `trained` (inside the killed run's `work` folder) to resume from, or None
    where there is none; SystemExit where there is one this run must not resume."""
    checkpoint = latest_checkpoint(trained) if work.is_dir() else None
    if checkpoint is None:
        return None
    refuse_if_changed(read_key(work), key, work, f"its {checkpoint.name}")
    if weights_only(checkpoint):
        raise SystemExit(
            f"{checkpoint}: holds the weights only (save_only_model: true), without optimizer, scheduler "
            f"and RNG state, so resuming it would train another model than an uninterrupted run; remove "
            f"{work} to start afresh (save_only_model: false makes checkpoints resumable)"
        )
    return checkpoint


def prepare_work(work: Path, trained: Path, key: dict, leader: bool) -> Path | None:
    """The checkpoint to resume from, if any. Without one, node 0 empties the work folder (a killed
    run's leftovers without a complete checkpoint: nothing to resume) and writes this run's key."""
    resume = resumable_checkpoint(work, trained, key)  # the same answer on every node (read only)
    if leader and resume is None:
        if work.exists():
            print(f"{work}: no complete checkpoint to resume from; starting afresh", flush=True)
            shutil.rmtree(work)
        write_key(work, key)
    if resume is not None:
        print(f"resuming from {resume}", flush=True)
    return resume
