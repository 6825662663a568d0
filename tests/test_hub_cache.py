"""The hub cache as a compute node without network reads it: a cache built in Hugging Face's own
layout from the real benchmark files and a tiny model is read by the real huggingface_hub,
datasets and transformers calls under HF_HUB_OFFLINE=1, checked file by file, and the pipeline's
own loaders read the snapshot the jobs are given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_layout import folder_files, populate

from motab.hubcache import HubRef, write_manifest

REPO = Path(__file__).resolve().parents[1]
MATH500 = HubRef("dataset", "HuggingFaceH4/MATH-500", "ff5b20257d8185524591543f8ff5993951537bb8")
GSM8K = HubRef("dataset", "openai/gsm8k", "740312add88f781978c0658806c59bc2815b9866", "main")
TINY = HubRef("model", "Qwen/Qwen3-4B", "1cfa9a7208912126459214e8b04321603b3df60c")
CARD = "---\nconfigs:\n{configs}---\n"


def dataset_card(configs: dict[str, dict[str, str]]) -> bytes:
    """A dataset card's YAML header naming each configuration's split files, as hub datasets carry."""
    text = "".join(
        f"- config_name: {name}\n  data_files:\n"
        + "".join(f"  - split: {split}\n    path: {path}\n" for split, path in splits.items())
        for name, splits in configs.items()
    )
    return CARD.format(configs=text).encode()


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, shared_data, tiny_model_dir) -> Path:
    cache = tmp_path_factory.mktemp("hub_cache")
    populate(
        cache,
        MATH500,
        {
            "README.md": dataset_card({"default": {"test": "test.jsonl"}}),
            "test.jsonl": (shared_data / "math500" / "test.jsonl").read_bytes(),
        },
    )
    populate(
        cache,
        GSM8K,
        {
            "README.md": dataset_card({"main": {"train": "main/train.jsonl", "test": "main/test.jsonl"}}),
            "main/train.jsonl": (shared_data / "gsm8k" / "train.jsonl").read_bytes(),
            "main/test.jsonl": (shared_data / "gsm8k" / "test.jsonl").read_bytes(),
        },
    )
    populate(cache, TINY, folder_files(tiny_model_dir))
    return cache


def test_offline_hub_calls_read_the_cache(hub_cache):
    import huggingface_hub.constants
    from huggingface_hub import hf_hub_download, snapshot_download

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # tests/conftest.py: no call may reach the hub
    hub = hub_cache / "hub"
    folder = snapshot_download(MATH500.repo, repo_type="dataset", revision=MATH500.revision, cache_dir=hub)
    assert Path(folder) == MATH500.snapshot(hub_cache)
    path = hf_hub_download(GSM8K.repo, "main/test.jsonl", repo_type="dataset", revision=GSM8K.revision, cache_dir=hub)
    assert len(Path(path).read_text(encoding="utf-8").splitlines()) == 1319


def test_datasets_reads_the_snapshot_the_jobs_get(hub_cache):
    from datasets import load_dataset

    math500 = load_dataset(str(MATH500.snapshot(hub_cache)), split="test")
    assert len(math500) == 500 and {"problem", "answer", "unique_id"} <= set(math500.column_names)
    gsm8k = load_dataset(str(GSM8K.snapshot(hub_cache)), "main", split="train")
    assert len(gsm8k) == 7473


def test_transformers_loads_the_model_offline(hub_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(TINY.repo, revision=TINY.revision, cache_dir=hub_cache / "hub")
    tokenizer = AutoTokenizer.from_pretrained(str(TINY.snapshot(hub_cache)))
    assert model.config.model_type == "qwen3" and tokenizer("1+1").input_ids


def test_benchmark_command_reads_the_snapshot(hub_cache, tmp_path):
    """`motab benchmark` as the rule runs it on a downloaded benchmark: the snapshot folder (and
    `:config`) as --input, in a fresh process with the hub unreachable."""
    out = tmp_path / "gsm8k.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "motab", "benchmark", "--input", GSM8K.location(hub_cache), "--format", "gsm8k"]
        + ["--name", "gsm8k", "--count", "1319", "--split", "test", "--output", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1319 and all(row["answer"] for row in rows)


def test_manifest_checks_each_file_against_its_blob_name(hub_cache, tmp_path):
    manifest = json.loads(write_manifest(MATH500, hub_cache).read_text())
    assert manifest["revision"] == MATH500.revision and set(manifest["files"]) == {"README.md", "test.jsonl"}
    # a corrupted blob stops the download step, naming the file, and is removed so a rerun refetches it
    cache = tmp_path / "cache"
    snapshot = populate(cache, MATH500, {"README.md": b"card", "test.jsonl": b'{"problem": "1+1?"}\n'})
    blob = (snapshot / "test.jsonl").resolve()
    blob.write_bytes(b'{"problem": "2+2?"}\n')
    with pytest.raises(SystemExit, match="test.jsonl: content hash"):
        write_manifest(MATH500, cache)
    assert not blob.exists() and not MATH500.manifest(cache).exists()


def test_a_file_the_hub_listed_but_missing_stops_the_download_step(tmp_path):
    snapshot = populate(tmp_path, MATH500, {"README.md": b"card", "test.jsonl": b"{}\n"})
    (snapshot / "test.jsonl").unlink()  # an interrupted download
    with pytest.raises(SystemExit, match="test.jsonl: listed on the hub at this commit but missing"):
        write_manifest(MATH500, tmp_path)


def test_a_hub_dataset_that_cannot_be_read_is_one_line_with_the_remedy(tmp_path):
    """Offline, an unpinned hub id read by the job stops it with the id and what to do, no traceback."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "motab", "prepare", "--input", "GAIR/LIMO", "--source", "limo"]
        + ["--output", str(tmp_path / "problems.jsonl")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("motab prepare: error: GAIR/LIMO (split train): cannot be read (")
    assert "run `snakemake download` where the hub can be reached, or point `path` at a local copy" in proc.stderr


def hub_download(cache: Path, ref: HubRef) -> subprocess.CompletedProcess:
    """`motab hub-download` as the download rule runs it, on a machine with no hub (HF_HUB_OFFLINE=1)."""
    return subprocess.run(
        [sys.executable, "-m", "motab", "hub-download", "--kind", ref.kind, "--repo", ref.repo]
        + ["--revision", ref.revision, "--cache", str(cache)],
        env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_download_step_takes_a_snapshot_already_in_the_cache_without_the_hub(tmp_path):
    """A cache a user already has (their HF cache named as hub_cache): the real snapshot_download
    finds the snapshot offline, and the step checks it and writes the manifest."""
    populate(tmp_path, MATH500, {"README.md": b"card", "test.jsonl": b'{"problem": "1+1?"}\n'})
    proc = hub_download(tmp_path, MATH500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(MATH500.manifest(tmp_path).read_text())["files"]["test.jsonl"]["size"] == 20


def test_download_step_without_the_hub_says_so_in_one_line(tmp_path):
    proc = hub_download(tmp_path, MATH500)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"HuggingFaceH4/MATH-500@ff5b20257d: cannot be fetched into {tmp_path} (")
    assert not MATH500.manifest(tmp_path).exists()
