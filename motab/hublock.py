"""Locks of unpinned hub entries: a dataset or benchmark whose `revision` is not a commit (or is
absent) is fetched once by the download step, and the commit it got is written to a lock file

    <cache>/locks/datasets--GAIR--LIMO@main.json    {"repo", "kind", "requested", "revision": <commit>}

Every job of a run is given the lock file (as its input and its location) and reads the snapshot of
that commit, so all jobs read the same data, later runs too, and an offline node resolves it without
the hub. Deleting the lock takes the hub's branch again at the next download.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from motab.hubcache import COMMIT, KINDS, HubRef, download, hub_id

DEFAULT_BRANCH = "main"


def requested(entry: dict) -> str:
    """The branch or tag an unpinned entry follows (its `revision`, else the hub's main)."""
    revision = entry.get("revision")
    return revision if isinstance(revision, str) and revision else DEFAULT_BRANCH


def lock_path(kind: str, repo: str, branch: str, cache: str | Path) -> Path:
    return Path(cache) / "locks" / f"{kind}s--{repo.replace('/', '--')}@{quote(branch, safe='')}.json"


def entry_lock(section: str, entry: dict, cache: str | Path) -> Path | None:
    """The lock file of an unpinned hub dataset or benchmark; None for anything else (a pinned
    entry, a local path, a toy entry, a model: models are pinned in config.yaml)."""
    found = hub_id(entry)
    if section == "models" or found is None or COMMIT.fullmatch(str(entry.get("revision", ""))):
        return None
    return lock_path(KINDS[section], found[0], requested(entry), cache)


def read_lock(path: str | Path) -> HubRef:
    """The snapshot a lock names (its cache is the folder above locks/)."""
    body = json.loads(Path(path).read_text(encoding="utf-8"))
    return HubRef(body["kind"], body["repo"], body["revision"])


def resolve(location: str) -> str:
    """What a job reads for a location: the locked snapshot folder (with `:subset`) for a lock file,
    the location itself otherwise."""
    from motab.data.prepare import split_subset

    source, subset = split_subset(location)
    if not (source.endswith(".json") and Path(source).parent.name == "locks" and Path(source).is_file()):
        return location
    ref = read_lock(source)
    return ref.location(Path(source).parent.parent) + (f":{subset}" if subset else "")


def _resolve_commit(kind: str, repo: str, branch: str, cache: Path) -> str:
    """The commit the branch names now: the hub's answer online; the cache's refs/<branch> (written by
    huggingface_hub when it fetched that branch) when HF_HUB_OFFLINE is set."""
    from motab.hubcache import offline_var

    var = offline_var(os.environ)
    if var:
        ref = cache / "hub" / f"{kind}s--{repo.replace('/', '--')}" / "refs" / branch
        if ref.is_file() and COMMIT.fullmatch(commit := ref.read_text().strip()):
            return commit
        raise SystemExit(
            f"{repo}@{branch}: unpinned, not in the hub cache {cache} and {var} is set; run the download "
            "step where the hub can be reached (docs/data.md)"
        )
    from huggingface_hub import HfApi

    try:
        return HfApi().repo_info(repo, repo_type=kind, revision=branch, timeout=30).sha
    except Exception as exc:  # noqa: BLE001 - any failure is one line with the remedy
        why = exc.__class__.__name__ + (f": {str(exc).splitlines()[0][:160]}" if str(exc) else "")
        raise SystemExit(
            f"{repo}@{branch}: cannot ask the hub for its commit ({why}); check the id, `hf auth login` for a "
            "gated one, or pin a 40-hex `revision` in config (docs/data.md)"
        ) from None


def fetch_and_lock(kind: str, repo: str, branch: str, cache: str | Path) -> tuple[HubRef, Path]:
    """Fetch the branch's current commit (checked, with its manifest) and write the lock naming it."""
    cache = Path(cache)
    ref = HubRef(kind, repo, _resolve_commit(kind, repo, branch, cache))
    if not ref.manifest(cache).is_file():  # else fetched and checked before
        download(ref, cache)
    out = lock_path(kind, repo, branch, cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {"kind": kind, "repo": repo, "requested": branch, "revision": ref.revision}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out)
    return ref, out
