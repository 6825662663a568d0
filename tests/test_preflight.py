"""Defaults a user has and a pre-flight before any job: config.yaml names hub ids at pinned commits
(no path outside the repository), GPU jobs read the hub cache's snapshots, the download step is
planned per snapshot, and a missing input stops the run before any job, offline without a network
attempt."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from motab.config_check import looks_local
from motab.hubcache import COMMIT, hub_ref
from motab.preflight import preflight

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
PAPER = ["motab", "pwopsd", "cotfilter", "opd"]
MATH500 = {"source": "file", "format": "math500", "path": "HuggingFaceH4/MATH-500", "split": "test"}
PIN = "ff5b20257d8185524591543f8ff5993951537bb8"


def catalogue() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def strings(tree, key=()):
    if isinstance(tree, dict):
        for name, value in tree.items():
            yield from strings(value, (*key, str(name)))
    elif isinstance(tree, list):
        for value in tree:
            yield from strings(value, key)
    elif isinstance(tree, str):
        yield ".".join(key), tree


def test_config_names_no_path_outside_the_repository():
    files = [REPO / "config.yaml", *sorted((REPO / "studies").glob("*.yaml"))]
    for file in files:
        for key, value in strings(yaml.safe_load(file.read_text())):
            if key.endswith(".path") or key == "hub_cache" or value.startswith(("../", "/", "~")):
                if key.endswith(".path") and not looks_local(value):
                    continue  # a hub id
                if key.startswith(("servers", "containers")) or "python" in key:
                    continue  # commands and images, not data
                resolved = (REPO / Path(value).expanduser()).resolve()
                assert resolved.is_relative_to(REPO), f"{file.name}: {key}: {value!r} is outside the repository"


def test_every_hub_model_is_pinned_to_a_commit():
    models = catalogue()["models"]
    unpinned = [name for name, entry in models.items() if entry["source"] == "hub" and not hub_ref("models", entry)]
    assert not unpinned, f"models without a 40-hex revision: {unpinned}"


def plan(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, *args],
        cwd=cwd,
        env=env or dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_download_step_fetches_each_snapshot_once_and_gpu_jobs_read_local_files():
    proc = plan("-n", "-p", "download", "--config", f"select=[{','.join(PAPER)}]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = catalogue()
    downloads = re.findall(r"motab hub-download --kind (\w+) --repo (\S+) --revision ([0-9a-f]{40})", proc.stdout)
    assert len(downloads) == len(set(downloads)) >= 10  # one job per repository and commit
    pinned = {(e["path"].split(":")[0], e["revision"]) for e in config["models"].values() if e["source"] == "hub"}
    assert {("Qwen/Qwen3-32B", config["models"]["Qwen3-32B"]["revision"])} <= pinned
    assert {(repo, rev) for _, repo, rev in downloads} >= {
        (repo, rev) for repo, rev in pinned if repo in {"Qwen/Qwen3-32B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B-Base"}
    }
    assert re.search(r"download_hub\s+\d+", proc.stdout) and "rule synth" not in proc.stdout

    proc = plan("-n", "-p", "--config", "select=[motab]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [line for line in proc.stdout.splitlines() if line.startswith("Shell command:")]
    gpu = [c for c in commands if re.search(r"motab (synth|sft|kd-train|kdflow|eval-\w+) ", c)]
    assert gpu and not [c for c in gpu if re.search(r"--(model|teacher|student) '?(Qwen|deepseek-ai|allenai)/", c)]
    assert any("--teacher hub_cache/hub/models--Qwen--Qwen3-32B/snapshots/" in c for c in gpu)


def test_offline_preflight_refuses_a_missing_input_and_passes_a_present_one(tmp_path):
    config = {
        "select": ["s"],
        "hub_cache": "cache",
        "models": {
            "m": {"source": "hub", "path": "Qwen/Qwen3-4B", "revision": "1cfa9a7208912126459214e8b04321603b3df60c"}
        },
        "datasets": {"d": {"source": "limo", "path": "GAIR/LIMO"}},
        "benchmarks": {"b": MATH500 | {"revision": PIN}},
        "studies": {
            "s": {"teacher": "m", "student": "m", "train_data": "d", "runs": {}, "eval": {"benchmarks": ["b"]}}
        },
    }
    refused = preflight(config, ["s"], {"HF_HUB_OFFLINE": "1"}, tmp_path)
    assert refused[0].startswith("models.m: Qwen/Qwen3-4B@1cfa9a7208 is not in the hub cache cache and HF_HUB_OFFLINE")
    assert "run `snakemake download --config 'select=[s]'` on a machine with network" in refused[0]
    assert refused[1].startswith("datasets.d: GAIR/LIMO is unpinned and no commit of it is locked in the hub cache")
    assert refused[2].startswith("benchmarks.b: HuggingFaceH4/MATH-500@ff5b20257d is not in the hub cache")
    assert len(refused) == 3
    for section, name in (("models", "m"), ("benchmarks", "b")):
        manifest = tmp_path / hub_ref(section, config[section][name]).manifest("cache")
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text("{}")
    config["datasets"]["d"]["path"] = str(tmp_path)  # a local copy
    assert preflight(config, ["s"], {"TRANSFORMERS_OFFLINE": "1"}, tmp_path) == []


class CountingEndpoint:
    """A TCP port standing for the hub: counts the connections made to it and closes each."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections, self._stop = 0, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop = True
        self.thread.join()
        self.sock.close()


PROBE = """
import json, sys
from motab.preflight import preflight
config = {"select": ["s"], "models": {}, "datasets": {}, "benchmarks": {"b": json.loads(sys.argv[1])},
          "studies": {"s": {"eval": {"benchmarks": ["b"]}}}}
print("\\n".join(preflight(config, ["s"])))
"""


@pytest.mark.parametrize("offline", ["1", "0"])
def test_preflight_asks_the_hub_only_when_online(tmp_path, offline):
    hub = CountingEndpoint()
    env = dict(os.environ, HF_HUB_OFFLINE=offline, HF_ENDPOINT=hub.url, PYTHONPATH=str(REPO))
    env.pop("TRANSFORMERS_OFFLINE", None), env.pop("HF_DATASETS_OFFLINE", None)
    bench = MATH500 | {"revision": PIN}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(bench)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    hub.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    if offline == "1":
        assert hub.connections == 0 and "HF_HUB_OFFLINE is set" in proc.stdout
    else:
        assert hub.connections > 0
        assert proc.stdout.startswith("benchmarks.b: cannot fetch HuggingFaceH4/MATH-500 from the hub (")
        assert "run `snakemake download --config 'select=[s]'` where the hub can be reached" in proc.stdout


def test_revision_pins_are_commits():
    config = catalogue()
    for section in ("models", "datasets", "benchmarks"):
        for name, entry in config[section].items():
            if "revision" in entry:
                assert COMMIT.fullmatch(entry["revision"]), f"{section}.{name}.revision"


@pytest.mark.slow
def test_a_run_stops_before_any_job_until_the_download_is_in_the_cache(tmp_path, shared_data):
    """Offline, a run whose benchmark is not downloaded stops at the pre-flight with one line naming
    it and what to run; once the snapshot is in the hub cache (built in the hub's layout from the
    real file, checked by `motab hub-download --verify-only`) the benchmark job reads it offline."""
    from dryrun import copy_workflow
    from hub_layout import populate
    from test_hub_cache import MATH500 as REF
    from test_hub_cache import dataset_card

    workdir = tmp_path / "work"
    workdir.mkdir()
    copy_workflow(workdir)
    (workdir / "overlay.yaml").write_text(
        yaml.safe_dump(
            {"hub_cache": str(tmp_path / "cache"), "studies": {"toy": {"eval": {"benchmarks": ["math500"]}}}}
        )
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    target = ("--cores", "1", "results/toy/benchmarks/math500.jsonl", "--configfile", "config.yaml", "overlay.yaml")
    proc = plan(*target, env=env, cwd=workdir)
    assert proc.returncode != 0
    assert "pre-flight: inputs missing, no job started:" in proc.stderr
    assert f"benchmarks.math500: HuggingFaceH4/MATH-500@{PIN[:10]} is not in the hub cache" in proc.stderr
    assert "Traceback" not in proc.stderr and not (workdir / "logs").exists()

    populate(
        tmp_path / "cache",
        REF,
        {
            "README.md": dataset_card({"default": {"test": "test.jsonl"}}),
            "test.jsonl": (shared_data / "math500" / "test.jsonl").read_bytes(),
        },
    )
    verify = [sys.executable, "-m", "motab", "hub-download", "--kind", "dataset", "--repo", REF.repo]
    verify += ["--revision", REF.revision, "--cache", str(tmp_path / "cache"), "--verify-only"]
    assert subprocess.run(verify, env=env, cwd=workdir, capture_output=True, timeout=120).returncode == 0
    proc = plan(*target, env=env, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len((workdir / "results/toy/benchmarks/math500.jsonl").read_text().splitlines()) == 500
    assert not (workdir / "logs" / "download").exists()  # nothing was downloaded: the cache served it
