"""A hub cache built by hand in Hugging Face's own layout, as `snapshot_download` leaves it:
<cache>/hub/<kind>s--<owner>--<name>/{blobs/<etag>, snapshots/<commit>/<file> -> blobs, refs/main,
trees/<commit>.json}. The etag (the blob's name) is the sha256 of an LFS file's content and the git
blob sha1 of any other file, as on the hub; trees/<commit>.json is the hub's file listing at that
commit (huggingface_hub 1.x keeps it, and reads it instead of the hub when offline)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from motab.hubcache import HubRef

LFS_SUFFIXES = (".safetensors", ".parquet", ".bin")


def etag(data: bytes, name: str) -> str:
    if name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()  # noqa: S324 - git's own hash


def populate(cache: Path, ref: HubRef, files: dict[str, bytes]) -> Path:
    """Write `files` (path in the repository: content) as the snapshot of `ref`; returns its folder."""
    repo = cache / "hub" / ref.folder
    snapshot = repo / "snapshots" / ref.revision
    listing = {}
    for name, data in sorted(files.items()):
        tag = etag(data, name)
        listing[name] = {"size": len(data), "blob_id": etag(data, "git")}
        if tag != listing[name]["blob_id"]:  # an LFS file: the git blob is its pointer, not kept here
            listing[name] |= {"lfs_sha256": tag, "lfs_size": len(data)}
        blob = repo / "blobs" / tag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(ref.revision)
    (repo / "trees").mkdir(exist_ok=True)
    (repo / "trees" / f"{ref.revision}.json").write_text(json.dumps({"format_version": 1, "files": listing}))
    return snapshot


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
