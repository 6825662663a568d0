"""The resume contract of every long job (synthesis, SFT, KD): partial state is kept with a key of
everything that decides its bytes, and a rerun resumes only where its own key is the same.

A key is a JSON object: the settings, and fingerprints of the inputs read from files (model folders,
data, prompts). A rerun whose key differs stops before training or generating, with one line that
names each changed field and the folder (or file) to remove; so does partial state without a key
(nothing tells what made it). Nothing is deleted without a word.

Model folders are fingerprinted by their files' names, sizes and modification times (hashing the
weights of an 8B model would take minutes per start): a model rebuilt at the same path, e.g. by an
upstream rerun, is another model. Data and prompt files are hashed (SHA-256).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

KEY_FILE = "resume_key.json"  # beside the partial state of SFT and KD


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def optional_sha256(path: str | Path | None) -> str | None:
    """The SHA-256 of a file, or None where `path` is not a file (none given, a hub id, `self`)."""
    return file_sha256(path) if path and Path(path).is_file() else None


def folder_sha256(folder: str | Path) -> str:
    """One SHA-256 over a data folder: every file's relative path and content, sorted."""
    root = Path(folder)
    entries = sorted((str(p.relative_to(root)), file_sha256(p)) for p in root.rglob("*") if p.is_file())
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def model_fingerprint(location: str | Path | None) -> str | None:
    """Names, sizes and modification times of a local model folder's files (no hashing of weights);
    None for a hub id (its revision is the hub's business) or no model."""
    if not location or not Path(location).is_dir():
        return None
    root = Path(location)
    entries = sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def changes(old: Any, new: Any, where: str = "") -> list[str]:
    """Each field that differs, as `field: old -> new` (nested objects as dotted names)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for name in sorted(set(old) | set(new)):
            out += changes(old.get(name), new.get(name), f"{where}.{name}" if where else name)
        return out
    return [] if old == new else [f"{where}: {json.dumps(old)} -> {json.dumps(new)}"]


def refuse_if_changed(old: dict | None, new: dict, partial: str | Path, what: str) -> None:
    """SystemExit (one line) unless `old`, the key saved with `what` under `partial`, equals `new`."""
    fix = f"rerun with the earlier settings, or remove {partial} to start afresh"
    if old is None:
        raise SystemExit(
            f"{partial}: {what} without a resume key (written by an older version), so it cannot be "
            f"checked against this run's settings; {fix}"
        )
    changed = changes(old, json.loads(json.dumps(new)))  # tuples as the saved key's lists
    if changed:
        raise SystemExit(f"{partial}: {what} made with other settings ({'; '.join(changed)}); {fix}")


def write_key(folder: str | Path, key: dict) -> None:
    """<folder>/resume_key.json, written before any partial state is (so state never lacks its key)."""
    from motab.jsonio import write_json

    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json(Path(folder) / KEY_FILE, key)


def read_key(folder: str | Path) -> dict | None:
    path = Path(folder) / KEY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
