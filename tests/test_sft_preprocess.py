"""LLaMA-Factory's preprocessing sized to the data for every study: workers from the rows and the
job's CPUs, the tokenized cache kept for a resume, and a ddp_timeout covering rank 0's tokenization,
as LLaMA-Factory's own parser (get_train_args) reads the YAML the sft job writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from motab.plan import compose, workflow_config
from motab.training import sft_preprocess
from motab.training.sft import train_args

REPO = Path(__file__).resolve().parents[1]
HF_DEFAULT_DDP_TIMEOUT = 1800  # transformers' TrainingArguments default


def dataset(folder: Path, rows: int) -> Path:
    """An alpaca dataset folder as `motab reorganize` writes it, with `rows` lines."""
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"instruction": "1+1?", "input": "", "output": "2"}) + "\n"
    (folder / "train.jsonl").write_text(line * rows)
    (folder / "dataset_info.json").write_text(json.dumps({"d": {"file_name": "train.jsonl"}}))
    return folder


def parsed(study: str, data: Path, tmp_path: Path, monkeypatch, cpus: str):
    from llamafactory.hparams import get_train_args

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", cpus)
    config = compose(workflow_config(REPO), REPO)
    block = config["studies"][study]["sft"] | {"deepspeed": None}
    block = {k: v for k, v in block.items() if v is not None}
    args = train_args(str(tmp_path / "model"), str(data), "d", str(tmp_path / "out"), block, cpu=True)
    written = yaml.safe_load(yaml.safe_dump(args, sort_keys=True))  # as llamafactory_train.yaml holds it
    _model, data_args, training_args, _finetuning, _generating = get_train_args(written)
    return data_args, training_args


def test_openthoughts3_sized_sft_tokenizes_in_parallel_within_its_timeout(tmp_path, monkeypatch):
    """The opd study's SFT on OpenThoughts3's 1.2M rows: 16 workers on a 16-CPU job, the cache
    kept across a resume, and rank 0's tokenization inside the collective's timeout."""
    data_args, training_args = parsed("opd", dataset(tmp_path / "ot3", 1_200_000), tmp_path, monkeypatch, "16")
    assert data_args.preprocessing_num_workers == 16
    assert data_args.overwrite_cache is False
    # at 50 rows/s on one worker (16k-token chats), tokenization needs 24,000 s; HF's default is 1,800
    assert training_args.ddp_timeout >= 1_200_000 / 50 > HF_DEFAULT_DDP_TIMEOUT


def test_a_small_set_tokenizes_in_one_process(tmp_path, monkeypatch):
    data_args, training_args = parsed("cotfilter", dataset(tmp_path / "small", 817), tmp_path, monkeypatch, "16")
    assert data_args.preprocessing_num_workers == 1 and data_args.overwrite_cache is False
    assert training_args.ddp_timeout >= HF_DEFAULT_DDP_TIMEOUT


def test_a_studys_own_values_win(tmp_path, monkeypatch):
    """The motab study keeps the MOTAB release's 64 workers, 180,000,000 s and overwrite_cache."""
    data_args, training_args = parsed("motab", dataset(tmp_path / "m", 50_000), tmp_path, monkeypatch, "8")
    assert data_args.preprocessing_num_workers == 64 and data_args.overwrite_cache is True
    assert training_args.ddp_timeout == 180_000_000


@pytest.mark.parametrize(("rows", "cpus", "workers"), [(0, 8, 1), (25_000, 8, 2), (1_000_000, 8, 8)])
def test_workers_follow_rows_up_to_the_cpus(rows, cpus, workers):
    assert sft_preprocess.preprocessing_defaults(rows, cpus)["preprocessing_num_workers"] == workers
