"""`motab training-curves`: training curves from checkpoint folders (PNG).

    motab training-curves --run LABEL=CKPT_DIR ... --output curves.png

Each folder's training_log.csv (SFT: step,loss; on-policy KD: step,loss,kl_to_teacher,
rollout_tokens): SFT's cross-entropy, KD's loss and KD's KL to the teacher each on its own axes
(curve_panels). kl_to_teacher is the reverse KL, KL(student || teacher): the mean over the student's
own response tokens of log p_student - log p_teacher (motab.training.kd.step), labelled so. A folder without the file is named in a note on the figure, never silently dropped.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from motab.commandline import command_parser
from motab.jsonio import DataError
from motab.report.figure import pyplot, run_colours, save_png
from motab.training.kd.progress import KL_LABEL

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


def curve_panels(logs: Sequence[tuple[str, dict[str, list[float]]]]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, y label, [(run label, column)]) of each panel. SFT's cross-entropy and KD's
    divergences are different quantities, so they never share an axis: SFT runs (no
    kl_to_teacher column) get one panel, KD runs their loss and their KL to the teacher."""
    sft = [label for label, columns in logs if "kl_to_teacher" not in columns]
    kd = [label for label, columns in logs if "kl_to_teacher" in columns]
    panels = []
    if sft:
        panels.append(("SFT: cross-entropy", "cross-entropy (nats / token)", [(label, "loss") for label in sft]))
    if kd:
        panels.append(("On-policy KD: distillation loss", "KD loss", [(label, "loss") for label in kd]))
        panels.append(
            (
                "On-policy KD: reverse KL to the teacher",
                f"{KL_LABEL} (nats / token)",
                [(label, "kl_to_teacher") for label in kd],
            )
        )
    return panels


def training_curves(runs: Sequence[tuple[str, str | os.PathLike]], output: str | os.PathLike) -> list[str]:
    """Plot each (label, checkpoint folder)'s training log; returns the labels whose log is missing."""
    logs, missing = [], []
    for label, folder in runs:
        path = Path(folder) / LOG_NAME
        if path.is_file():
            logs.append((label, read_training_log(path)))
        else:
            missing.append(label)
    panels = curve_panels(logs) or [("Training", "loss", [])]
    by_label = dict(logs)
    # a run keeps its colour across panels, and no two runs share one
    color = dict(zip((label for label, _ in logs), run_colours(len(logs))))
    matplotlib, plt = pyplot()
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig, axes = plt.subplots(1, len(panels), figsize=(1.0 + 5.0 * len(panels), 4.2), squeeze=False)
        for ax, (title, ylabel, series) in zip(axes[0], panels):
            for label, column in series:
                ax.plot(by_label[label]["step"], by_label[label][column], label=label, color=color[label])
            ax.set_xlabel("step")
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=10)
            if series:
                ax.legend(fontsize=8)
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
    parser = command_parser(
        "training-curves",
        "training curves (PNG)",
        "motab training-curves --run 'SFT=results/toy/ckpt/sft/sft_teacher_only' "
        "'SFT + KD (RKL)=results/toy/ckpt/kd/sft_teacher_only_kd_rkl' --output curves.png",
    )
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
    print(
        f"wrote {args.output} ({len(runs) - len(missing)} logs"
        + (f"; missing: {', '.join(missing)})" if missing else ")")
    )
    return 0
