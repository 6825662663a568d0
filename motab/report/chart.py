"""`motab report-chart`: a table's cells as a bar chart with error bars (PNG).

    motab report-chart --spec SPEC.json --evals E1.json ... --output chart.png

One group per benchmark plus Avg (over two or more benchmarks, as the table), one bar per run, each
run its own colour (figure.run_colours); error bars = the sample std over seeds (none for a single
seed and for Avg). The numbers are the table's own (motab.tables.build reads and
aggregates them), so chart and table cannot disagree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from motab.commandline import command_parser
from motab.jsonio import read_json_object
from motab.report.figure import pyplot, run_colours, save_png
from motab.tables.build import aggregate, load_evals, parse_spec
from motab.tables.render import show_avg


def chart_data(
    spec_obj: dict, eval_paths: Sequence[str | os.PathLike]
) -> tuple[list[str], list[str], list[list[float]], list[list[float | None]]]:
    """(group labels, run labels, means[run][group], stds[run][group]) as the table computes them;
    std is None where the table shows none (a single seed, and the Avg column)."""
    spec = parse_spec(spec_obj)
    values = load_evals(eval_paths, spec)
    avg = show_avg(spec)
    groups = [bench["label"] for bench in spec.benchmarks] + (["Avg"] if avg else [])
    means, stds = [], []
    for row in spec.rows:
        cells = [aggregate(values[(row["run"], bench["name"])], spec.scale) for bench in spec.benchmarks]
        means.append([c.mean for c in cells] + ([math.fsum(c.mean for c in cells) / len(cells)] if avg else []))
        stds.append([c.std for c in cells] + ([None] if avg else []))
    return groups, [row["label"] for row in spec.rows], means, stds


def bar_chart(spec_obj: dict, eval_paths: Sequence[str | os.PathLike], output: str | os.PathLike) -> None:
    groups, runs, means, stds = chart_data(spec_obj, eval_paths)
    matplotlib, plt = pyplot()
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(runs)) / 2), 4.5))
        width = 0.8 / len(runs)
        for i, (label, ys, es, colour) in enumerate(zip(runs, means, stds, run_colours(len(runs)))):
            xs = [g + (i - (len(runs) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, ys, width, label=label, color=colour)
            with_std = [(x, y, e) for x, y, e in zip(xs, ys, es) if e is not None]
            if with_std:
                ax.errorbar(
                    [x for x, _, _ in with_std],
                    [y for _, y, _ in with_std],
                    yerr=[e for _, _, e in with_std],
                    fmt="none",
                    ecolor="black",
                    elinewidth=1,
                    capsize=3,
                )
        ax.set_xticks(range(len(groups)), groups)
        spec = parse_spec(spec_obj)
        scale = f" × {spec.scale:g}" if spec.scale != 1 else ""
        ax.set_ylabel(f"{spec.metric}{scale}")
        ax.set_title(spec.title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        save_png(fig, output)
        plt.close(fig)


def main(argv: list[str]) -> int:
    parser = command_parser(
        "report-chart",
        "table bar chart (PNG)",
        "motab report-chart --spec results/toy/tables/main.spec.json --evals results/toy/eval/*/*/seed*.json --output main.png",
    )
    parser.add_argument("--spec", required=True, help="table spec JSON (as for `motab tables`)")
    parser.add_argument("--evals", required=True, nargs="+", help="eval JSON files")
    parser.add_argument("--output", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    bar_chart(read_json_object(args.spec), args.evals, args.output)
    print(f"wrote {args.output}")
    return 0
