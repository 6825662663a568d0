"""The pre-flight, before any job runs: every model, dataset and benchmark the selected studies read
is present locally (a path, or the hub cache's checked download) or can be fetched, one line per
missing item with what to run.

- Offline (`HF_HUB_OFFLINE`, `TRANSFORMERS_OFFLINE` or `HF_DATASETS_OFFLINE` set): no network is
  tried; a hub input not in the cache is missing (`snakemake download` on a machine with network).
- Online: each hub input not in the cache is looked up on the hub once (repository and commit exist,
  a gated one has a token), so a typo or a missing login stops the run before any download or job.

Local paths that do not exist are start-up errors already (motab.config_check.local_path_errors).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from motab.config_check import used_entries
from motab.hubcache import cache_dir, hub_id, hub_ref, offline_var
from motab.hublock import entry_lock, read_lock, requested

DOCS = "docs/data.md"


def pending(config: Mapping, studies: Iterable[str], workdir: str | Path = ".") -> list[tuple[str, dict]]:
    """(config key, entry) of each hub input the studies read that is not in the hub cache."""
    cache = Path(workdir) / cache_dir(config)
    found = []
    for section, names in used_entries(config, list(studies)).items():
        for name in sorted(names):
            entry = config[section][name]
            if hub_id(entry) is None:  # toy, or a local path
                continue
            ref = hub_ref(section, entry) or _locked(section, entry, cache)
            if ref is None or not ref.manifest(cache).is_file():
                found.append((f"{section}.{name}", entry | {"_section": section}))
    return found


def _locked(section: str, entry: dict, cache: Path):
    """The snapshot an unpinned entry's lock names, if the download step wrote one."""
    lock = entry_lock(section, entry, cache)
    return read_lock(lock) if lock and lock.is_file() else None


def unpinned_notes(
    config: Mapping, studies: Iterable[str], workdir: str | Path = ".", environ: Mapping[str, str] = os.environ
) -> list[str]:
    """One line per unpinned hub dataset or benchmark the studies read: the commit its lock holds, or
    (online; offline the pre-flight names it as missing) that the download step will lock one."""
    cache = cache_dir(config)
    notes = []
    for section, names in used_entries(config, list(studies)).items():
        for name in sorted(names):
            entry = config[section][name]
            lock = entry_lock(section, entry, cache)
            if lock is None:
                continue
            ref = _locked(section, entry, Path(workdir) / cache)
            what = f"{section}.{name}: {hub_id(entry)[0]} is unpinned (no commit `revision`);"
            if ref:
                notes.append(f"{what} its jobs read commit {ref.revision}, locked in {lock}")
            elif not offline_var(environ):
                notes.append(f"{what} the download step locks the commit of {requested(entry)} it fetches in {lock}")
    return notes


def hub_check(kind: str, repo: str, revision: str | None) -> str | None:
    """Why the hub cannot serve this repository at this revision (None: it can)."""
    from huggingface_hub import HfApi, get_token

    try:
        info = HfApi().repo_info(repo, repo_type=kind, revision=revision, timeout=15)
    except Exception as exc:  # noqa: BLE001 - any failure is reported as one line
        return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:160] if str(exc) else 'no answer'}"
    if getattr(info, "gated", False) and not get_token():
        return "gated: accept its terms on huggingface.co, then `hf auth login` or set HF_TOKEN"
    return None


def _describe(entry: dict) -> tuple[str, str, str | None]:
    repo, _ = hub_id(entry)
    kind = "model" if entry["_section"] == "models" else "dataset"
    return kind, repo, entry.get("revision")


def _offline_line(key: str, entry: dict, var: str, select: str, cache: str) -> str:
    """Why an input missing from the hub cache cannot be had on this offline machine, and what to run."""
    _, repo, revision = _describe(entry)
    if hub_ref(entry["_section"], entry):
        return (
            f"{key}: {repo}@{revision[:10]} is not in the hub cache {cache} and {var} is set;"
            f" run `{select}` on a machine with network ({DOCS})"
        )
    if entry_lock(entry["_section"], entry, cache):
        return (
            f"{key}: {repo} is unpinned and no commit of it is locked in the hub cache {cache}, and {var} is set;"
            f" run `{select}` on a machine with network: it fetches {requested(entry)} and locks that commit ({DOCS})"
        )
    return (
        f"{key}: {repo} has no pinned commit (`revision`), so its jobs would read the hub, and {var} is"
        f" set; pin a 40-hex `revision` and run `{select}`, or point `path` at a local copy ({DOCS})"
    )


def _lost_snapshot(key: str, entry: dict, cache: str, workdir: str | Path) -> str | None:
    """A lock whose snapshot is gone from the cache: the download step keeps the lock, so say how to
    fetch that commit again (or take the branch anew)."""
    lock = entry_lock(entry["_section"], entry, cache)
    ref = _locked(entry["_section"], entry, Path(workdir) / cache) if lock else None
    if ref is None:
        return None
    return (
        f"{key}: {ref.repo} is locked at {ref.revision} ({lock}) but that snapshot is not in the hub cache; run"
        f" `motab hub-download --kind {ref.kind} --repo {ref.repo} --revision {ref.revision} --cache {cache}`"
        f" where the hub can be reached, or delete the lock to take {requested(entry)} anew ({DOCS})"
    )


def preflight(
    config: Mapping,
    studies: Iterable[str],
    environ: Mapping[str, str] = os.environ,
    workdir: str | Path = ".",
    check: Callable[[str, str, str | None], str | None] = hub_check,
) -> list[str]:
    """One line per input the studies cannot get, with what to run; [] when all can be had."""
    studies = list(studies)
    cache = cache_dir(config)
    missing, lost = [], []
    for key, entry in pending(config, studies, workdir):
        line = _lost_snapshot(key, entry, cache, workdir)
        lost += [line] if line else []
        missing += [] if line else [(key, entry)]
    select = f"snakemake download --config 'select=[{','.join(studies)}]'"
    var = offline_var(environ)
    if var or not missing:
        return lost + [_offline_line(key, entry, var, select, cache) for key, entry in missing]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda item: check(*_describe(item[1])), missing))
    return lost + [
        f"{key}: cannot fetch {_describe(entry)[1]} from the hub ({why}); fix it, or run `{select}` where the hub"
        f" can be reached and set HF_HUB_OFFLINE=1 here ({DOCS})"
        for (key, entry), why in zip(missing, answers, strict=True)
        if why
    ]
