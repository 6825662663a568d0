"""Which hub snapshots a study reads, where the jobs find them, and the download step's targets.

A model, dataset or benchmark whose `path` is a hub id and whose `revision` is a commit is read by
its jobs from the hub cache (motab.hubcache): the jobs get the snapshot folder as a local path, and
the download rule's manifest as an input, so `snakemake` fetches each snapshot once, on the login
node, before any job that needs it. An unpinned hub dataset or benchmark (no commit `revision`) is
read through its lock (motab.hublock): the jobs get the lock file, which the download step writes
with the commit it fetched. Anything else (a local path, an unpinned hub model) is read as written.
"""

from __future__ import annotations

from collections.abc import Mapping

from motab.config_check import used_entries
from motab.hubcache import HubRef, cache_dir, hub_ref
from motab.hublock import entry_lock, requested


def entry_ref(config: Mapping, section: str, name: str) -> HubRef | None:
    return hub_ref(section, config[section].get(name))


def entry_location(config: Mapping, section: str, name: str) -> str | None:
    """The snapshot a job reads for a pinned hub entry, the lock file (with `:subset`) of an unpinned
    one; None where the entry's path is read as written."""
    ref = entry_ref(config, section, name)
    if ref:
        return ref.location(cache_dir(config))
    lock = entry_lock(section, config[section][name], cache_dir(config))
    subset = config[section][name]["path"].partition(":")[2] if lock else ""
    return str(lock) + (f":{subset}" if subset else "") if lock else None


def entry_inputs(config: Mapping, section: str, name: str) -> list[str]:
    """The download step's output a job waits for: the manifest of a pinned hub entry, the lock of an
    unpinned one (none otherwise)."""
    ref = entry_ref(config, section, name)
    if ref:
        return [str(ref.manifest(cache_dir(config)))]
    lock = entry_lock(section, config[section][name], cache_dir(config))
    return [str(lock)] if lock else []


def study_refs(config: Mapping, studies: list[str]) -> dict[str, list[str]]:
    """{manifest or lock path: [config keys that read it]} of the studies' hub entries: the targets
    of `snakemake download` (one snapshot shared by entries of the same repository and commit)."""
    found: dict[str, list[str]] = {}
    for section, names in used_entries(config, studies).items():
        for name in sorted(names):
            for manifest in entry_inputs(config, section, name):
                found.setdefault(manifest, []).append(f"{section}.{name}")
    return dict(sorted(found.items()))


def manifest_ref(config: Mapping, manifest: str) -> HubRef:
    """The snapshot a manifest path stands for (the download rule's params)."""
    for section in ("models", "datasets", "benchmarks"):
        for entry in config[section].values():
            ref = hub_ref(section, entry)
            if ref and str(ref.manifest(cache_dir(config))) == manifest:
                return ref
    raise KeyError(f"{manifest}: no pinned hub entry in config names this snapshot")


def lock_entry(config: Mapping, lock: str) -> tuple[str, str, str]:
    """(kind, repo, branch) a lock path stands for (the lock rule's params)."""
    for section in ("datasets", "benchmarks"):
        for entry in config[section].values():
            if str(entry_lock(section, entry, cache_dir(config))) == lock:
                return "dataset", entry["path"].partition(":")[0], requested(entry)
    raise KeyError(f"{lock}: no unpinned hub entry in config names this lock")
