"""Checkpoints that are either complete or absent.

- `atomic_save`: the final HF checkpoint (model + tokenizer + small JSON files) is written into a
  temporary sibling folder ".<name>.tmp" and renamed into place only when complete, so a crash never
  leaves a half-written folder that looks finished.
- `save_training_state` / `latest_training_state` / `load_training_state`: resumable state under
  <output>.partial/step-N (model weights, optimizer, RNG state, step, logged rows), each written the
  same atomic way; only the newest is kept.

A write that fails for want of space says so, with the folder (OSError ENOSPC or EFBIG): torch's
writer only says "[enforce fail at inline_container.cc:672] unexpected pos".
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from motab.jsonio import write_json

STEP_DIR = re.compile(r"^step-(\d+)$")


def _atomic_dir(out_dir: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Call fill(tmp) on an empty ".<name>.tmp" sibling, then move it to out_dir (replacing it)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp"
    old = out.parent / f".{out.name}.old"
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    tmp.mkdir()
    try:
        fill(tmp)
    except BaseException as exc:
        full = _out_of_space(tmp, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        if full is not None:
            raise OSError(full, f"{os.strerror(full)} while writing {out} ({type(exc).__name__}: {exc})") from exc
        raise
    if out.exists():
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return out


LOW_SPACE = 64 * 1024 * 1024  # a failed write leaves its file system about this full, or fuller


def _out_of_space(tmp: Path, exc: BaseException) -> int | None:
    """ENOSPC or EFBIG when that is why writing into `tmp` failed, else None. torch's and
    safetensors' writers lose the errno, so a failure of theirs is checked against the file system
    (a write that does not fit fills it first) and the file size limit (ulimit -f)."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return errno.EFBIG if code == errno.EFBIG else errno.ENOSPC
    if not isinstance(exc, (RuntimeError, OSError)) and type(exc).__name__ != "SafetensorError":
        return None
    try:
        stat = os.statvfs(tmp)
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize < LOW_SPACE:
        return errno.ENOSPC
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and any(f.stat().st_size >= soft for f in tmp.rglob("*") if f.is_file()):
        return errno.EFBIG
    return None


def atomic_save(
    model,
    tokenizer,
    out_dir: str | os.PathLike,
    extra_json: dict[str, Any] | None = None,
    extra_text: dict[str, str] | None = None,
) -> Path:
    """Write model + tokenizer (+ {file name: JSON object}, {file name: text}) as one HF checkpoint, atomically."""

    def fill(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        for name, obj in (extra_json or {}).items():
            write_json(tmp / name, obj)
        for name, text in (extra_text or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")

    return _atomic_dir(out_dir, fill)


def save_training_state(root: str | os.PathLike, step: int, model, optimizer, state: dict[str, Any]) -> Path:
    """<root>/step-<step>: model weights, optimizer state and `state` (RNG, rows...); older steps removed."""
    import torch

    def fill(tmp: Path) -> None:
        torch.save(model.state_dict(), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(dict(state, step=step), tmp / "state.pt")

    out = _atomic_dir(Path(root) / f"step-{step}", fill)
    for other in Path(root).iterdir():
        match = STEP_DIR.match(other.name)
        if match and int(match.group(1)) != step:
            shutil.rmtree(other)
    return out


def atomic_state_dict(model, out_dir: str | os.PathLike) -> Path:
    """<out_dir>/model.pt: the model's weights (a step kept for export), written atomically."""
    import torch

    return _atomic_dir(out_dir, lambda tmp: torch.save(model.state_dict(), tmp / "model.pt"))


def latest_training_state(root: str | os.PathLike) -> Path | None:
    """The newest complete <root>/step-N folder, or None (temporary folders start with '.' and are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return max(steps)[1] if steps else None


def load_training_state(path: str | os.PathLike, model, optimizer) -> dict[str, Any]:
    """Load weights and optimizer state from a step folder into `model`/`optimizer`; return the state dict."""
    import torch

    path = Path(path)
    model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    # weights_only: tensors and plain containers only, so a tampered state.pt cannot run code
    return torch.load(path / "state.pt", weights_only=True)
