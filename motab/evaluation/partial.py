"""eval-generate's partial output: rows kept as they come, so a killed job resumes where it stopped.

`<output>.partial.jsonl` holds a first line {"partial_key": {...}} naming what decides the rows' bytes
(the sampling settings, a fingerprint of the model folder, the problems and their prompts), then one
row per finished problem, appended and flushed as each request returns. A rerun with the same key
reads the rows back (a line torn by the kill is dropped) and asks the server only for the rest; any
other key stops with the parts that changed and the file to remove. A row does not depend on which
problems shared its request (each row has its own seed), so a resumed output equals an uninterrupted
one byte for byte. The file is removed once every job of the command has written its output.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from motab.jsonio import DataError, dumps

SMALL_FILE = 1 << 20  # model files up to this size are hashed whole (config, tokenizer, template)


def digest(obj) -> str:
    return hashlib.sha256(dumps(obj).encode()).hexdigest()[:16]


def model_fingerprint(model: str) -> str:
    """A folder's files: name, size and modification time of each, and the content of the small ones
    (weights rewritten at the same path change size or time). A hub id is its own fingerprint."""
    root = Path(model)
    if not root.is_dir():
        return digest(model)
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        entry = [str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns]
        if stat.st_size <= SMALL_FILE:
            entry.append(hashlib.sha256(path.read_bytes()).hexdigest())
        entries.append(entry)
    return digest(entries)


def partial_key(settings: dict, model: str, problems: list[dict], prompts: list[str]) -> dict[str, str]:
    return {
        "settings": digest(settings),
        "model": model_fingerprint(model),
        "problems": digest(problems),
        "prompts": digest(prompts),
    }


def partial_path(output: str | os.PathLike) -> Path:
    return Path(f"{output}.partial.jsonl")


class Partial:
    """The rows of one job's output generated so far (see the module docstring)."""

    def __init__(self, output: str | os.PathLike, key: dict[str, str]):
        self.path, self.key = partial_path(output), key

    def load(self) -> dict[str, dict]:
        """The rows kept by an earlier run, by id (empty when there is none); a new file is started."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(dumps({"partial_key": self.key}) + "\n", encoding="utf-8")
            return {}
        raw = self.path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]  # a kill may leave half a line
        lines = complete.decode("utf-8").splitlines()
        if not lines:  # killed before its first line was whole: nothing kept
            self.path.write_text(dumps({"partial_key": self.key}) + "\n", encoding="utf-8")
            return {}
        first = json.loads(lines[0])
        changed = [part for part in self.key if first.get("partial_key", {}).get(part) != self.key[part]]
        if changed:
            raise DataError(
                self.path,
                1,
                "partial_key",
                f"kept from an earlier run with another {', '.join(changed)}; remove it to start over (rm {self.path})",
            )
        if len(complete) != len(raw):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        rows = (json.loads(line) for line in lines[1:] if line.strip())
        return {str(row["id"]): row for row in rows}

    def add(self, rows: list[dict]) -> None:
        """Append finished rows, on disk before the next request's rows (a kill loses at most those)."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.writelines(dumps(row) + "\n" for row in rows)
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
