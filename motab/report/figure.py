"""Shared figure plumbing for the report: Agg backend, default style, run colours, deterministic PNG bytes.

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


def run_colours(n: int) -> list[str]:
    """n distinct colours, one per run, the same for the same n: matplotlib's ten default colours
    (C0..C9, so up to ten runs look as before), then the light partners of tab20, then tab20b and
    tab20c (60 in all), then evenly spaced hues. Before, colour i was C{i % 10}: the 11th run took
    the first run's blue."""
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"].colors
    palette = [tab20[i] for i in range(0, 20, 2)] + [tab20[i] for i in range(1, 20, 2)]
    palette += list(matplotlib.colormaps["tab20b"].colors) + list(matplotlib.colormaps["tab20c"].colors)
    palette = [matplotlib.colors.to_hex(c) for c in palette]
    palette = list(dict.fromkeys(palette))  # no colour twice
    extra = max(0, n - len(palette))
    palette += [
        matplotlib.colors.to_hex(matplotlib.colors.hsv_to_rgb((i / extra, 0.75, 0.6 + 0.3 * (i % 2))))
        for i in range(extra)
    ]
    return palette[:n]
