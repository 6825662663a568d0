"""The hub cache: the models, datasets and benchmarks a study names as hub ids, fetched once at
their pinned commit into one folder that the GPU jobs then read as local files.

Layout (`hub_cache` in config.yaml, default `hub_cache/` in the working directory):

    <cache>/hub/models--Qwen--Qwen3-4B/snapshots/<commit>/...   Hugging Face's own cache layout
    <cache>/manifests/models--Qwen--Qwen3-4B@<commit>.json      written once the files are checked

`<cache>/hub` is what `huggingface_hub` calls a cache_dir (HF_HUB_CACHE), so a cache a user already
has (`~/.cache/huggingface`) can be named as `hub_cache`, and `snapshot_download(...,
cache_dir=<cache>/hub)` finds the files offline. Only a 40-hex commit pins a snapshot folder: a
branch or tag would be resolved again by each job, so such an entry stays read from the hub.

Checksums: the hub names each blob by its content hash (sha256 for LFS files, the git blob sha1 for
the others), so every file of a snapshot is checked against its own name, also offline
(`motab hub-download --verify-only`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from motab.commandline import command_parser
from motab.config_check import looks_local

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def offline_var(environ) -> str | None:
    """The variable that puts this machine offline, if any (huggingface_hub's truthy values)."""
    return next((v for v in OFFLINE_VARS if environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")), None)


DEFAULT_CACHE = "hub_cache"
COMMIT = re.compile(r"[0-9a-f]{40}")
# weights a server or trainer never reads: the original (non-HF) checkpoints and other frameworks'
MODEL_IGNORE = ("original/*", "*.pth", "*.gguf", "*.h5", "*.msgpack", "*.onnx", "*.ot")
KINDS = {"models": "model", "datasets": "dataset", "benchmarks": "dataset"}
_CHUNK = 1 << 22


@dataclass(frozen=True)
class HubRef:
    """One hub repository at one commit, and the subset (datasets config) an entry reads."""

    kind: str  # "model" | "dataset"
    repo: str  # owner/name
    revision: str  # 40-hex commit
    subset: str = ""

    @property
    def folder(self) -> str:
        return f"{self.kind}s--{self.repo.replace('/', '--')}"

    def snapshot(self, cache: str | Path) -> Path:
        return Path(cache) / "hub" / self.folder / "snapshots" / self.revision

    def manifest(self, cache: str | Path) -> Path:
        return Path(cache) / "manifests" / f"{self.folder}@{self.revision}.json"

    def location(self, cache: str | Path) -> str:
        """What a job reads: the snapshot folder, with `:subset` for a dataset configuration."""
        return str(self.snapshot(cache)) + (f":{self.subset}" if self.subset else "")

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.revision[:10]}" + (f" ({self.subset})" if self.subset else "")


def cache_dir(config) -> str:
    """The hub cache folder of a config (`hub_cache`), normalised as the rules write paths."""
    return str(Path(config.get("hub_cache") or DEFAULT_CACHE))


def hub_id(entry: dict) -> tuple[str, str] | None:
    """(owner/name, subset) of an entry whose path is a hub id; None for a local path or a toy entry."""
    if not isinstance(entry, dict) or entry.get("source") == "toy":
        return None
    path = entry.get("path")
    if not isinstance(path, str) or looks_local(path):
        return None
    repo, _, subset = path.partition(":")
    return (repo, subset) if repo.count("/") == 1 else None


def hub_ref(section: str, entry: dict) -> HubRef | None:
    """The pinned snapshot of a config entry: a hub id whose `revision` is a commit, else None."""
    found = hub_id(entry)
    revision = entry.get("revision") if isinstance(entry, dict) else None
    if found is None or not isinstance(revision, str) or not COMMIT.fullmatch(revision):
        return None
    return HubRef(KINDS[section], found[0], revision, found[1])


# ----------------------------------------------------------------------------- checksums


def _digest(path: Path, kind: str) -> str:
    """sha256 of the file, or its git blob sha1 (`blob <size>\\0` + content) for kind "git"."""
    digest = hashlib.sha256() if kind == "sha256" else hashlib.sha1()  # noqa: S324 - git's own hash
    if kind == "git":
        digest.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def listed_files(snapshot: Path, ignore: tuple[str, ...] = ()) -> set[str] | None:
    """The files the hub listed at this commit (trees/<commit>.json, kept by huggingface_hub beside
    the snapshots), less the ignored patterns; None where no listing was kept."""
    from fnmatch import fnmatch

    listing = snapshot.parent.parent / "trees" / f"{snapshot.name}.json"
    try:
        names = json.loads(listing.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {name for name in names if not any(fnmatch(name, pattern) for pattern in ignore)}


def verify_snapshot(snapshot: Path, ignore: tuple[str, ...] = ()) -> tuple[dict[str, dict], list[str]]:
    """({relative path: {size, sha256 | git_sha1}}, problems): every file checked against the name
    of the blob it links to (a file not linked into blobs/, a copied cache, is hashed only), and
    every file of the hub's listing at that commit present."""
    files, problems = {}, []
    for path in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        rel = path.relative_to(snapshot).as_posix()
        blob = path.resolve()
        expected = blob.name if blob.parent.name == "blobs" else ""
        kind = "sha256" if len(expected) == 64 else "git" if len(expected) == 40 else "sha256"
        actual = _digest(blob, kind)
        files[rel] = {"size": blob.stat().st_size, "git_sha1" if kind == "git" else "sha256": actual}
        if expected and actual != expected:
            problems.append(f"{rel}: content hash {actual} differs from its blob name {expected}")
    listed = listed_files(snapshot, ignore)
    problems += [
        f"{name}: listed on the hub at this commit but missing" for name in sorted((listed or set()) - set(files))
    ]
    if not files:
        problems.append(f"{snapshot}: no files")
    return files, problems


def write_manifest(ref: HubRef, cache: str | Path) -> Path:
    """Check the snapshot's files and write the manifest (the download rule's output); a mismatch
    removes the bad blobs so a rerun fetches them again, and stops with one line per file."""
    snapshot = ref.snapshot(cache)
    files, problems = verify_snapshot(snapshot, MODEL_IGNORE if ref.kind == "model" else ())
    if problems:
        for rel in (line.split(":", 1)[0] for line in problems):
            blob = (snapshot / rel).resolve()
            if blob.parent.name == "blobs":
                blob.unlink(missing_ok=True)
        raise SystemExit(
            f"{ref.label}: checksum mismatch, bad blobs removed (rerun to fetch them):\n  " + "\n  ".join(problems)
        )
    out = ref.manifest(cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {"repo": ref.repo, "kind": ref.kind, "revision": ref.revision, "files": files}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


# ----------------------------------------------------------------------------- download


def download(ref: HubRef, cache: str | Path) -> Path:
    """Fetch the snapshot (huggingface_hub resumes partial files), check it, write the manifest."""
    import httpx
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        snapshot_download(
            repo_id=ref.repo,
            repo_type=ref.kind,
            revision=ref.revision,
            cache_dir=str(Path(cache) / "hub"),
            ignore_patterns=list(MODEL_IGNORE) if ref.kind == "model" else None,
        )
    except GatedRepoError:
        raise SystemExit(
            f"{ref.label}: gated on the hub; accept its terms on huggingface.co, then `hf auth login` or set HF_TOKEN"
        ) from None
    except RevisionNotFoundError:
        raise SystemExit(f"{ref.label}: no such revision on the hub (config `revision`)") from None
    except RepositoryNotFoundError:
        raise SystemExit(f"{ref.repo}: no such {ref.kind} on the hub, or private (config `path`)") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, httpx.HTTPError, OSError) as exc:
        why = exc.__class__.__name__ + (f": {str(exc).splitlines()[0][:160]}" if str(exc) else "")
        raise SystemExit(
            f"{ref.label}: cannot be fetched into {cache} ({why}); run the download step where the hub can be "
            "reached, without HF_HUB_OFFLINE (docs/data.md); a rerun resumes"
        ) from None
    return write_manifest(ref, cache)


def main(argv: list[str]) -> int:
    parser = command_parser(
        "hub-download",
        __doc__.split("\n\n")[0],
        "motab hub-download --kind model --repo Qwen/Qwen3-4B --revision 1cfa9a7208912126459214e8b04321603b3df60c --verify-only",
    )
    parser.add_argument("--kind", required=True, choices=["model", "dataset"])
    parser.add_argument("--repo", required=True, help="owner/name")
    parser.add_argument("--revision", required=True, help="40-hex commit (a branch or tag with --lock)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="the cache folder (hub layout under <cache>/hub)")
    parser.add_argument("--verify-only", action="store_true", help="check the files already there; no network")
    parser.add_argument(
        "--lock", action="store_true", help="an unpinned entry: fetch the branch's commit, record it in <cache>/locks/"
    )
    args = parser.parse_args(argv)
    if args.lock:
        from motab.hublock import fetch_and_lock

        ref, lock = fetch_and_lock(args.kind, args.repo, args.revision, args.cache)
        print(f"{args.repo}: unpinned; fetched {args.revision} at commit {ref.revision}, locked in {lock}")
        return 0
    if not COMMIT.fullmatch(args.revision):
        raise SystemExit(f"--revision {args.revision!r}: expected a 40-hex commit (or --lock for a branch)")
    ref = HubRef(args.kind, args.repo, args.revision)
    out = write_manifest(ref, args.cache) if args.verify_only else download(ref, args.cache)
    print(f"{ref.label}: {len(json.loads(out.read_text())['files'])} files checked -> {out}")
    return 0
