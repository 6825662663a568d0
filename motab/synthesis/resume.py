"""What a synthesis `.partial` file was made with, so a rerun resumes only rows it would make again.

The resume contract of motab/resume_contract.py. The partial file's first line is
`{"resume_key": {...}}`: the method, its parameters, the teacher and student as given plus a
fingerprint of their files (a rebuilt toy model at the same path is another model), and the SHA-256 of the problems file. A rerun whose key differs stops before starting any
server, naming each changed field and the file to remove; so does a partial holding ids that are no
longer among the problems, or sample numbers beyond num_responses (rows that would otherwise be
merged into, or crash, the final file after all generation).
"""

from __future__ import annotations

import json
from pathlib import Path

from motab.resume_contract import file_sha256, model_fingerprint, refuse_if_changed

KEY_FIELD = "resume_key"


def resume_key(method: str, params: dict, teacher: str, student: str | None, problems: str | Path) -> dict:
    return {
        "method": method,
        "params": params,
        "teacher": teacher,
        "teacher_files": model_fingerprint(teacher),
        "student": student,
        "student_files": model_fingerprint(student),
        "problems_sha256": file_sha256(problems),
    }


def header_line(key: dict) -> str:
    return json.dumps({KEY_FIELD: key}, sort_keys=True, ensure_ascii=False) + "\n"


def read_partial(partial: Path) -> tuple[dict | None, dict[tuple[str, int], dict]]:
    """(the key line's key or None, rows by (id, sample)); a torn line (cut by a kill) is dropped."""
    key, done = None, {}
    if not partial.exists():
        return key, done
    with open(partial, encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a SIGKILL cut short; its chunk is redone
            if isinstance(row, dict) and KEY_FIELD in row:
                key = row[KEY_FIELD]
            else:
                done[(row["id"], row["sample"])] = row
    return key, done


def check_resumable(
    partial: Path, key: dict, problems: list[dict], num_responses: int, problems_path: str
) -> dict[tuple[str, int], dict]:
    """The rows of `partial` a run with `key` may keep; SystemExit naming what differs otherwise."""
    old, done = read_partial(partial)
    if not done:
        return done
    named = f"problems ({problems_path}) sha256"  # the problems file named by its path in the message
    rename = lambda k: {named if n == "problems_sha256" else n: v for n, v in k.items()}  # noqa: E731
    refuse_if_changed(None if old is None else rename(old), rename(key), partial, f"its {len(done)} rows")
    ids = {p["id"] for p in problems}
    stale = sorted({i for i, _ in done if i not in ids})
    if stale:
        raise SystemExit(
            f"{partial}: rows of ids not among the problems of {problems_path}: "
            f"{', '.join(map(str, stale[:5]))}{' ...' if len(stale) > 5 else ''} ({len(stale)} ids); "
            f"remove {partial} to start afresh"
        )
    beyond = sorted({s for _, s in done if not 0 <= s < num_responses})
    if beyond:
        raise SystemExit(
            f"{partial}: rows with sample {beyond[0]}, beyond num_responses {num_responses}; "
            f"remove {partial} to start afresh"
        )
    return done
