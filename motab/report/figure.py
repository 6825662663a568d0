"""Shared figure plumbing for the report: Agg backend, default style, deterministic PNG bytes.

Determinism: the Agg backend, matplotlib's default style (a user's matplotlibrc is ignored),
fixed size and dpi, and no "Software" / date metadata in the PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

DPI = 100


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return matplotlib, plt


def save_png(fig, path: str | os.PathLike) -> None:
    """Write the figure atomically as PNG without metadata that would vary."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    os.replace(tmp, path)
