"""EvalScope reads what the download step fetched, on a node without network: for each benchmark of
config.yaml that a study may evaluate with `engine: evalscope`, the TaskConfig our engine builds for
the job's location (the hub cache's snapshot) makes the real EvalScope 1.14 adapter load the
benchmark from that folder with HF_HUB_OFFLINE=1 and every socket connection refused."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hub_layout import populate
from test_hub_cache import dataset_card

from motab.hubcache import hub_ref
from motab.plan import hub as plan_hub

REPO = Path(__file__).resolve().parents[1]
GPQA_FIELDS = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
               "Record ID", "High-level domain", "Subdomain"]  # fmt: skip

# Runs in a fresh process: the hub libraries read HF_HUB_OFFLINE when imported, and no socket may open.
PROBE = """
import argparse, json, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network refused by the test")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = refuse
from evalscope import TaskConfig
from evalscope.api.registry import get_benchmark
from motab.evaluation.evalscope_engine import job_task_config
out = {}
for job in json.loads(sys.argv[1]):
    job = argparse.Namespace(temperature=0.6, top_p=1.0, max_tokens=16, seed=0, limit=0, batch_size=1, top_k=None, **job)
    config = job_task_config("http://127.0.0.1:9", job, 0, __import__("pathlib").Path(job.work_dir))
    adapter = get_benchmark(job.dataset, config=TaskConfig(**config))
    data = adapter.load_dataset()
    samples = [s for subset in data.values() for s in subset]
    out[job.name] = {"n": len(samples), "source": adapter.dataset_id, "first": samples[0].model_dump(mode="json")}
print(json.dumps(out))
"""


def parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def gpqa_csv() -> bytes:
    """Three made-up rows in GPQA's field layout (GPQA asks that its questions not be redistributed)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, GPQA_FIELDS)
    writer.writeheader()
    for i in range(3):
        writer.writerow(
            {"Question": f"Which value is right in case {i}?", "Correct Answer": f"right {i}",
             "Incorrect Answer 1": f"wrong a{i}", "Incorrect Answer 2": f"wrong b{i}",
             "Incorrect Answer 3": f"wrong c{i}", "Record ID": f"rec{i}", "High-level domain": "Physics",
             "Subdomain": "Optics"}
        )  # fmt: skip
    return out.getvalue().encode()


def snapshots(cache: Path, benchmarks: dict, shared_data: Path) -> None:
    """Each benchmark's repository at its pinned commit, in the layout its hub repository has."""
    files = {
        "math500": {
            "README.md": dataset_card({"default": {"test": "test.jsonl"}}),
            "test.jsonl": (shared_data / "math500" / "test.jsonl").read_bytes(),
        },
        "aime24": {  # HuggingFaceH4/aime_2024: one parquet file, split train
            "README.md": dataset_card({"default": {"train": "data/train-00000-of-00001.parquet"}}),
            "data/train-00000-of-00001.parquet": parquet(jsonl(shared_data / "aime24" / "test.jsonl")),
        },
        "aime25": {
            "README.md": dataset_card({"default": {"test": "test.jsonl"}}),
            "test.jsonl": (shared_data / "aime25" / "test.jsonl").read_bytes(),
        },
        "gsm8k": {  # openai/gsm8k: two configurations, main and socratic; EvalScope's few-shot reads train
            "README.md": dataset_card(
                {
                    "main": {"train": "main/train-00000-of-00001.parquet", "test": "main/test-00000-of-00001.parquet"},
                    "socratic": {"test": "socratic/test.parquet"},
                }
            ),
            "main/train-00000-of-00001.parquet": parquet(jsonl(shared_data / "gsm8k" / "train.jsonl")),
            "main/test-00000-of-00001.parquet": parquet(jsonl(shared_data / "gsm8k" / "test.jsonl")),
            "socratic/test.parquet": parquet(jsonl(shared_data / "gsm8k" / "test.jsonl")[:5]),
        },
        "gpqa_diamond": {  # Idavidrein/gpqa: one CSV per configuration; dataset_infos.json, which
            # EvalScope deletes from a local folder, must survive in the shared cache
            "README.md": dataset_card({"gpqa_diamond": {"train": "gpqa_diamond.csv"}, "gpqa_main": {"train": "x.csv"}}),
            "gpqa_diamond.csv": gpqa_csv(),
            "x.csv": gpqa_csv(),
            "dataset_infos.json": b"{}",
        },
    }
    for name, content in files.items():
        populate(cache, hub_ref("benchmarks", benchmarks[name]), content)


@pytest.mark.slow
def test_evalscope_loads_each_benchmark_from_the_hub_cache_offline(tmp_path, shared_data):
    pytest.importorskip("evalscope")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["hub_cache"] = str(tmp_path / "cache")
    benchmarks = config["benchmarks"]
    names = ["math500", "aime24", "aime25", "gsm8k", "gpqa_diamond"]
    snapshots(tmp_path / "cache", benchmarks, shared_data)
    jobs = [
        {
            "name": name,
            "benchmark_file": plan_hub.entry_location(config, "benchmarks", name),  # what the job is given
            "dataset": benchmarks[name]["evalscope"],
            "split": benchmarks[name]["split"],
            "dataset_args": benchmarks[name].get("evalscope_args", {}),
            "work_dir": str(tmp_path / "work" / name),
        }
        for name in names
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(REPO))
    env["EVALSCOPE_CACHE"] = env["MODELSCOPE_CACHE"] = str(tmp_path / "evalscope_cache")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(jobs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    counts = {name: got[name]["n"] for name in names}
    assert counts == {"math500": 500, "aime24": 30, "aime25": 30, "gsm8k": 1319, "gpqa_diamond": 3}
    for name in names:  # read from the snapshot folder, not EvalScope's own hub copy
        assert got[name]["source"].startswith(str(tmp_path)), (name, got[name]["source"])
    first_gsm8k = jsonl(shared_data / "gsm8k" / "test.jsonl")[0]
    assert first_gsm8k["question"] in json.dumps(got["gsm8k"]["first"]["input"], ensure_ascii=False)
    gpqa = got["gpqa_diamond"]["first"]
    assert "right 0" in gpqa["choices"] and gpqa["choices"][ord(gpqa["target"]) - 65] == "right 0"
    snapshot = hub_ref("benchmarks", benchmarks["gpqa_diamond"]).snapshot(tmp_path / "cache")
    assert (snapshot / "dataset_infos.json").is_file()
