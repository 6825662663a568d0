"""Unpinned hub entries stay reproducible: the download step records the commit it fetched in a lock
file, every job reads that commit's snapshot (offline too, even after the hub's branch moved), and
the pre-flight says in one line which commit is locked or that none is yet."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from hub_layout import populate
from test_hub_cache import dataset_card

from motab.hubcache import HubRef
from motab.hublock import entry_lock, resolve
from motab.plan import hub as plan_hub
from motab.preflight import preflight, unpinned_notes

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
LIMO = {"source": "limo", "path": "GAIR/LIMO"}
# two commits of a test cache (not real hub commits): main before and after it moved
FIRST, SECOND = (hashlib.sha1(word.encode()).hexdigest() for word in ("first", "second"))  # noqa: S324


def limo_rows(shared_data: Path, n: int) -> bytes:
    """MATH-500 rows reshaped as LIMO's (question, solution, answer)."""
    lines = (shared_data / "math500" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    rows = [json.loads(line) for line in lines]
    keep = ({"question": r["problem"], "solution": r["solution"], "answer": r["answer"]} for r in rows)
    return "".join(json.dumps(row) + "\n" for row in keep).encode()


def limo_snapshot(cache: Path, commit: str, data: bytes) -> None:
    card = dataset_card({"default": {"train": "limo.jsonl"}})
    populate(cache, HubRef("dataset", "GAIR/LIMO", commit), {"README.md": card, "limo.jsonl": data})


def motab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "motab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_download_locks_the_commit_and_every_job_reads_it_after_the_branch_moved(tmp_path, shared_data):
    cache = tmp_path / "cache"
    limo_snapshot(cache, FIRST, limo_rows(shared_data, 7))
    proc = motab("hub-download", "--lock", "--kind", "dataset", "--repo", "GAIR/LIMO", "--revision", "main",
                 "--cache", str(cache), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lock = cache / "locks" / "datasets--GAIR--LIMO@main.json"
    assert proc.stdout.strip() == f"GAIR/LIMO: unpinned; fetched main at commit {FIRST}, locked in {lock}"
    assert json.loads(lock.read_text())["revision"] == FIRST
    assert (cache / "manifests" / f"datasets--GAIR--LIMO@{FIRST}.json").is_file()  # checked like a pinned one

    limo_snapshot(cache, SECOND, limo_rows(shared_data, 3))  # the hub's main moves on
    for job in ("a", "b"):  # two jobs of the run (or of a later run), each in a fresh process
        (tmp_path / job).mkdir()
        out = tmp_path / job / "problems.jsonl"
        proc = motab("prepare", "--input", str(lock), "--source", "limo", "--output", str(out), cwd=tmp_path / job)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(out.read_text().splitlines()) == 7  # the locked commit, not main's new one
    assert resolve(str(lock) + ":default") == str(HubRef("dataset", "GAIR/LIMO", FIRST).snapshot(cache)) + ":default"


def test_preflight_refuses_an_unlocked_entry_offline_and_names_the_locked_commit(tmp_path):
    config = {
        "hub_cache": "cache",
        "models": {},
        "datasets": {"limo": LIMO},
        "benchmarks": {},
        "studies": {"s": {"train_data": "limo", "runs": {}, "eval": {"benchmarks": []}}},
    }
    refused = preflight(config, ["s"], {"HF_HUB_OFFLINE": "1"}, tmp_path)
    assert len(refused) == 1
    assert refused[0].startswith("datasets.limo: GAIR/LIMO is unpinned and no commit of it is locked")
    assert "run `snakemake download --config 'select=[s]'` on a machine with network" in refused[0]
    assert unpinned_notes(config, ["s"], tmp_path, {}) == [
        "datasets.limo: GAIR/LIMO is unpinned (no commit `revision`); the download step locks the commit of main "
        "it fetches in cache/locks/datasets--GAIR--LIMO@main.json"
    ]
    assert unpinned_notes(config, ["s"], tmp_path, {"HF_HUB_OFFLINE": "1"}) == []  # the refusal says it

    lock = tmp_path / entry_lock("datasets", LIMO, "cache")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"kind": "dataset", "repo": "GAIR/LIMO", "requested": "main", "revision": FIRST}))
    manifest = tmp_path / HubRef("dataset", "GAIR/LIMO", FIRST).manifest("cache")
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    assert preflight(config, ["s"], {"HF_HUB_OFFLINE": "1"}, tmp_path) == []
    manifest.unlink()  # the locked snapshot is gone: the lock stays, so the line says how to refetch it
    for environ in ({"HF_HUB_OFFLINE": "1"}, {}):
        (line,) = preflight(config, ["s"], environ, tmp_path, check=lambda *_: None)
        assert line.startswith(f"datasets.limo: GAIR/LIMO is locked at {FIRST} (cache/locks/")
        assert f"run `motab hub-download --kind dataset --repo GAIR/LIMO --revision {FIRST} --cache cache`" in line
    manifest.write_text("{}")
    assert unpinned_notes(config, ["s"], tmp_path, {"HF_HUB_OFFLINE": "1"}) == [
        f"datasets.limo: GAIR/LIMO is unpinned (no commit `revision`); its jobs read commit {FIRST}, locked in "
        "cache/locks/datasets--GAIR--LIMO@main.json"
    ]


def test_unpinned_entries_are_read_through_their_lock_and_pinned_ones_not():
    config = {
        "hub_cache": "hc",
        "datasets": {"limo": LIMO},
        "benchmarks": {
            "amc": {"source": "file", "path": "scottgeng00/amc_22-24", "split": "amc22"},
            "gpqa": {"source": "file", "path": "Idavidrein/gpqa:gpqa_diamond", "revision": "v1"},
            "local": {"source": "file", "path": "data/x.jsonl"},
        },
    }
    assert plan_hub.entry_location(config, "datasets", "limo") == "hc/locks/datasets--GAIR--LIMO@main.json"
    assert plan_hub.entry_inputs(config, "benchmarks", "amc") == ["hc/locks/datasets--scottgeng00--amc_22-24@main.json"]
    # a branch or tag as `revision` is followed and locked too; the entry's configuration rides along
    assert (
        plan_hub.entry_location(config, "benchmarks", "gpqa")
        == "hc/locks/datasets--Idavidrein--gpqa@v1.json:gpqa_diamond"
    )
    assert plan_hub.entry_location(config, "benchmarks", "local") is None
    assert plan_hub.lock_entry(config, "hc/locks/datasets--GAIR--LIMO@main.json") == ("dataset", "GAIR/LIMO", "main")


def test_dry_run_plans_one_lock_per_unpinned_entry_and_its_jobs_read_the_lock():
    proc = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "download", "--config", "select=[motab,pwopsd,cotfilter,opd]"],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    locks = re.findall(r"motab hub-download --lock --kind dataset --repo (\S+) --revision main", proc.stdout)
    assert sorted(locks) == ["GAIR/LIMO", "scottgeng00/amc_22-24"]
    notes = [line for line in proc.stderr.splitlines() if "is unpinned" in line]  # offline (tests/conftest.py)
    assert len(notes) == 2 and all(
        line.startswith("pre-flight: ") and "no commit of it is locked" in line for line in notes
    )

    proc = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--config", "select=[motab]"],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "motab prepare --input hub_cache/locks/datasets--GAIR--LIMO@main.json --source limo" in proc.stdout


def test_lock_without_the_hub_is_one_line_with_the_remedy(tmp_path):
    lock = ["hub-download", "--lock", "--kind", "dataset", "--repo", "GAIR/LIMO", "--revision", "main"]
    proc = motab(*lock, "--cache", str(tmp_path / "cache"), cwd=tmp_path)  # offline, nothing cached
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"GAIR/LIMO@main: unpinned, not in the hub cache {tmp_path / 'cache'} and HF_HUB_OFFLINE is set; "
        "run the download step where the hub can be reached (docs/data.md)"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    env.pop("TRANSFORMERS_OFFLINE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "motab", *lock, "--cache", str(tmp_path / "cache")],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("GAIR/LIMO@main: cannot ask the hub for its commit (")
    assert not (tmp_path / "cache" / "locks").exists()
