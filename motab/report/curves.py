"""`python -m motab training-curves`: training curves from checkpoint folders (PNG).

    python -m motab training-curves --run LABEL=CKPT_DIR ... --output curves.png

Each folder's training_log.csv (SFT: step,loss; on-policy KD: step,loss,kl_to_teacher,
rollout_tokens): loss per step, and KL to the teacher where logged. A folder without the file
is named in a note on the figure, never silently dropped.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Sequence
from pathlib import Path

from motab.jsonio import DataError
from motab.report.figure import pyplot, save_png

LOG_NAME = "training_log.csv"


def read_training_log(path: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of a training_log.csv as floats; a bad cell raises DataError with file:line:field."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "step" not in reader.fieldnames or "loss" not in reader.fieldnames:
            raise DataError(path, 1, None, f"expected a header with step and loss, found {reader.fieldnames}")
        columns: dict[str, list[float]] = {name: [] for name in reader.fieldnames}
        for number, row in enumerate(reader, start=2):
            for name in reader.fieldnames:
                try:
                    columns[name].append(float(row[name]))
                except (TypeError, ValueError):
                    raise DataError(path, number, name, f"expected a number, found {row[name]!r}") from None
    return columns


def training_curves(runs: Sequence[tuple[str, str | os.PathLike]], output: str | os.PathLike) -> list[str]:
    """Plot each (label, checkpoint folder)'s training log; returns the labels whose log is missing."""
    logs, missing = [], []
    for label, folder in runs:
        path = Path(folder) / LOG_NAME
        if path.is_file():
            logs.append((label, read_training_log(path)))
        else:
            missing.append(label)
    has_kl = any("kl_to_teacher" in columns for _, columns in logs)
    matplotlib, plt = pyplot()
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig, axes = plt.subplots(1, 2 if has_kl else 1, figsize=(11 if has_kl else 6.5, 4.2), squeeze=False)
        loss_ax = axes[0][0]
        for i, (label, columns) in enumerate(logs):
            loss_ax.plot(columns["step"], columns["loss"], label=label, color=f"C{i % 10}")
            if has_kl and "kl_to_teacher" in columns:
                axes[0][1].plot(columns["step"], columns["kl_to_teacher"], label=label, color=f"C{i % 10}")
        loss_ax.set_xlabel("step")
        loss_ax.set_ylabel("training loss")
        loss_ax.set_title("Training loss", fontsize=10)
        if has_kl:
            axes[0][1].set_xlabel("step")
            axes[0][1].set_ylabel("KL to teacher")
            axes[0][1].set_title("On-policy KD: KL to the teacher", fontsize=10)
            axes[0][1].legend(fontsize=8)
        if logs:
            loss_ax.legend(fontsize=8)
        note = []
        if not runs:
            note.append("no trained runs in this study's tables")
        if missing:
            note.append(f"no {LOG_NAME} for: " + ", ".join(missing))
        if note:
            fig.text(0.01, 0.01, "; ".join(note), fontsize=8, color="0.3")
        fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 1))
        save_png(fig, output)
        plt.close(fig)
    return missing


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m motab training-curves", description="training curves (PNG)")
    parser.add_argument("--run", nargs="*", default=[], metavar="LABEL=CKPT_DIR", help="checkpoint folders")
    parser.add_argument("--output", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    runs = []
    for pair in args.run:
        label, sep, folder = pair.partition("=")
        if not sep:
            parser.error(f"--run {pair!r}: expected LABEL=CKPT_DIR")
        runs.append((label, folder))
    missing = training_curves(runs, args.output)
    print(f"wrote {args.output} ({len(runs) - len(missing)} logs" + (f"; missing: {', '.join(missing)})" if missing else ")"))
    return 0
