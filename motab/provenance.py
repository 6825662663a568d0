"""Provenance recorded in every JSON output (never in tables): what produced this file."""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import motab

TRACKED_PACKAGES = (
    "motab-pipeline",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "llamafactory",
    "math-verify",
    "snakemake",
    "pandas",
    "aiohttp",
)


def config_hash(params: dict) -> str:
    """sha256 of the canonical JSON of the config values an output depends on."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of the pipeline checkout (+ '-dirty' when it has local changes), else the package version."""
    root = Path(motab.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "motab"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"motab-{motab.__version__}"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def revisions(params) -> dict[str, str]:
    """Every hub `revision` the params name, by its dotted path (e.g. benchmark.revision)."""
    found: dict[str, str] = {}

    def walk(value, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("revision", "model_revision") and isinstance(item, str):
                    found[path + key] = item
                else:
                    walk(item, f"{path}{key}.")

    walk(params, "")
    return dict(sorted(found.items()))


def provenance(params: dict) -> dict:
    record = {"config_hash": config_hash(params), "code_version": code_version(), "packages": package_versions()}
    pinned = revisions(params)
    return record | {"revisions": pinned} if pinned else record
