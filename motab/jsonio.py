"""JSON and JSONL reading/writing with the pipeline's guarantees.

- Errors name the file, the line and the field.
- Whole-file writes are atomic (temp file + rename), so a crash never leaves a file that looks done.
- JSON is written with sorted keys so equal data gives equal bytes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from motab.errors import UserError


class DataError(UserError):
    """Bad input, located as file:line:field."""

    def __init__(self, path: str | os.PathLike, line: int | None, field: str | None, message: str):
        where = str(path) + (f":{line}" if line is not None else "") + (f":{field}" if field else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = str(path), line, field


def dumps(obj: Any) -> str:
    """Canonical one-line JSON: sorted keys, UTF-8 kept, no trailing spaces."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


_INT_DIGITS_MAX = 4300  # Python's default int-string limit (sys.get_int_max_str_digits)


def _parse_int(text: str) -> int | str:
    """A JSON integer; one too long for Python's int() is kept as its digit string (a 5,000-digit
    gold answer stays gradable instead of crashing the reader)."""
    return int(text) if len(text) <= _INT_DIGITS_MAX else text


class _NonFinite(str):
    """The text of a NaN, Infinity or 1e999 number: Python's JSON reader accepts them, but no JSON
    number is not finite, and a NaN gold answer became the ungradable text "nan"."""


def _non_finite_field(obj: Any) -> tuple[str, str] | None:
    """(field path, number text) of the first non-finite number in obj, or None."""
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, _NonFinite):
            return where, str(value)
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))
    return None


def loads_finite(text: str, path: str | os.PathLike, line: int | None = None) -> Any:
    """json.loads that refuses NaN, Infinity and out-of-range numbers with file:line:field, as the
    embedded server refuses them (and keeps over-long integers as their digits)."""
    seen: list[str] = []

    def non_finite(number: str) -> _NonFinite:
        seen.append(number)
        return _NonFinite(number)

    def parse_float(number: str) -> float | _NonFinite:
        value = float(number)
        return value if math.isfinite(value) else non_finite(number)

    obj = json.loads(text, parse_int=_parse_int, parse_constant=non_finite, parse_float=parse_float)
    found = _non_finite_field(obj) if seen else None
    if found:
        field, number = found
        raise DataError(path, line, field or None, f"{number} is not a finite number (JSON has no NaN or Infinity)")
    return obj


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for each non-empty line; a bad line raises DataError.
    A UTF-8 byte-order mark at the start (as some Windows editors write) is skipped."""
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = loads_finite(line, path, number)
            except json.JSONDecodeError as exc:
                raise DataError(path, number, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise DataError(path, number, None, "JSON nested too deeply to read") from None
            if not isinstance(obj, dict):
                raise DataError(path, number, None, f"expected a JSON object, found {type(obj).__name__}")
            yield number, obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON file holding one object (a table spec, a run record); anything else raises DataError."""
    try:
        with open(path, encoding="utf-8-sig") as handle:
            obj = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, None, f"not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(path, None, None, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def require(
    obj: dict, field: str, kind: type | tuple[type, ...], path: str | os.PathLike, line: int, nullable: bool = False
) -> Any:
    """Return obj[field], raising DataError naming file:line:field when missing or mistyped."""
    if field not in obj:
        raise DataError(path, line, field, "missing field")
    value = obj[field]
    if value is None and nullable:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(path, line, field, f"expected {expected}, found {type(value).__name__} {value!r:.60}")
    return value


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are for the whole group
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    _atomic_write_text(path, "".join(dumps(row) + "\n" for row in rows))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    _atomic_write_text(path, json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    _atomic_write_text(path, text)


def append_jsonl(handle, row: dict) -> None:
    """Append one row and flush it to disk, so a killed job keeps every finished row."""
    handle.write(dumps(row) + "\n")
    handle.flush()
    os.fsync(handle.fileno())
