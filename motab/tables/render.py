"""The table as text: markdown, CSV, booktabs LaTeX and the HTML page of the Snakemake report,
with the footnote that states seeds, scale, Avg and how the answers were graded."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence

from motab.tables.cells import SINGLE_SEED_MARK, Line, Spec, aggregate


def _seed_note(values: dict[tuple[str, str], dict]) -> tuple[str, bool]:
    plain = {k: v for k, v in values.items() if not isinstance(next(iter(v)), tuple)}
    if len(plain) == len(values):
        return _plain_seed_note(plain)
    cells = [aggregate(v, 1.0) for k, v in values.items() if k not in plain]
    trained = sorted({(c.train_seeds, c.seeds) for c in cells})
    text = "; ".join(f"{t} training seeds (± across their means, each over {e} eval seeds)" for t, e in trained)
    if not plain:
        return text, any(t == 1 for t, _ in trained)
    rest, single = _plain_seed_note(plain)
    return f"{text}; rows that train nothing: {rest} (eval seeds)", single


def _plain_seed_note(values: dict[tuple[str, str], dict[int, float]]) -> tuple[str, bool]:
    counts = sorted({len(v) for v in values.values()})
    single = 1 in counts
    if len(counts) == 1:
        n = counts[0]
        text = f"{n} seed" + ("" if n == 1 else "s")
    else:
        text = f"{counts[0]}–{counts[-1]} seeds (see the CSV for each cell)"
    return text, single


def show_avg(spec: Spec) -> bool:
    """An Avg column only over two or more benchmarks (over one it repeats the column beside it)."""
    return len(spec.benchmarks) > 1


def footnote(spec: Spec, values: dict[tuple[str, str], dict[int, float]]) -> str:
    seeds, single = _seed_note(values)
    scale = f" × {fmt_scale(spec.scale)}" if spec.scale != 1 else ""
    note = f"Cells are {spec.metric}{scale}, mean ± sample std (ddof=1) over {seeds}"
    note += "; Avg is the equal-weight mean of the per-benchmark means." if show_avg(spec) else "."
    if single:
        note += f" {SINGLE_SEED_MARK} 1 seed: mean only, no std."
    if spec.reference:
        note += (
            f" Rows marked ({spec.reference['label']}) give published values; "
            f"Δ rows give ours − {spec.reference['label']}."
        )
    return note


def fmt_scale(scale: float) -> str:
    return str(int(scale)) if float(scale).is_integer() else repr(float(scale))


# ----------------------------------------------------------------------------------------------
# rendering


def _display(cell: tuple[str, str, str], pm: str, mark: str) -> str:
    mean, std, seeds = cell
    if std:
        return f"{mean}{pm}{std}"
    if seeds == "1":
        return f"{mean}{mark}"
    return mean


def _header(spec: Spec) -> list[str]:
    return (
        ["Run"]
        + [b["label"] for b in spec.benchmarks]
        + (["Avg"] if show_avg(spec) else [])
        + [c["label"] for c in spec.extra_columns]
    )


def _avg(spec: Spec, line: Line) -> list[str]:
    return [line.avg] if show_avg(spec) else []


def render_markdown(spec: Spec, lines: list[Line], footnote: str) -> str:
    header = _header(spec)
    out = [f"## {spec.title}", "", _md_row(header), "| :--- |" + " ---: |" * (len(header) - 1)]
    for line in lines:
        out.append(
            _md_row(
                [line.label]
                + [_display(c, " ± ", " " + SINGLE_SEED_MARK) for c in line.cells]
                + _avg(spec, line)
                + line.extras
            )
        )
    out += ["", footnote, ""]
    return "\n".join(out)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_csv(spec: Spec, lines: list[Line]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["row", "kind"]
    for bench in spec.benchmarks:
        header += [bench["label"], f"{bench['label']} std", f"{bench['label']} seeds"]
    header += (["Avg"] if show_avg(spec) else []) + [c["label"] for c in spec.extra_columns]
    writer.writerow(header)
    for line in lines:
        row = [line.label, line.kind]
        for cell in line.cells:
            row += list(cell)
        writer.writerow(row + _avg(spec, line) + line.extras)
    return buffer.getvalue()


_LATEX_SPECIALS = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": r"$-$",
    "–": "--",
    "×": r"$\times$",
    SINGLE_SEED_MARK: r"$^\dagger$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials (& % $ # _ { } ~ ^ \\) and map ± Δ − – × † to math."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def render_latex(spec: Spec, lines: list[Line], footnote: str) -> str:
    """A booktabs table (\\usepackage{booktabs}): top, mid and bottom rules, no vertical lines."""
    header = _header(spec)
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    for line in lines:
        cells = [latex_escape(_display(c, " ± ", SINGLE_SEED_MARK)) for c in line.cells]
        out.append(
            " & ".join(
                [latex_escape(line.label)]
                + cells
                + [latex_escape(a) for a in _avg(spec, line)]
                + [latex_escape(e) for e in line.extras]
            )
            + r" \\"
        )
    out += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{" + latex_escape(f"{spec.title}. {footnote}") + "}",
        r"\end{table}",
        "",
    ]
    return "\n".join(out)


def grading_note(eval_paths: Sequence[str | os.PathLike]) -> str:
    """How the answers were read and compared, from the eval files (motab.grading.extraction MODES): one phrase
    for the whole table, or one per benchmark when they differ; modes graded beside it are named."""
    by_bench: dict[str, set[str]] = {}
    for path in eval_paths:
        with open(path, encoding="utf-8") as handle:
            obj = json.load(handle)
        mode = (
            f"{obj.get('extraction', 'strict (unrecorded)')} extraction, {obj.get('equivalence', 'motab')} comparison"
        )
        also = sorted(set(obj.get("metrics_by_extraction", {})) - {obj.get("extraction")})
        by_bench.setdefault(str(obj.get("benchmark")), set()).add(
            mode + (f"; also graded: {', '.join(also)}" if also else "")
        )
    phrases = sorted({m for modes in by_bench.values() for m in modes})
    if len(phrases) == 1:
        return f" Answers: {phrases[0]}."
    return (
        " Answers: "
        + "; ".join(f"{bench}: {' / '.join(sorted(modes))}" for bench, modes in sorted(by_bench.items()))
        + "."
    )


def render_html(spec: Spec, lines: list[Line], footnote: str) -> str:
    """A standalone HTML page of the table: what `snakemake --report` shows when the entry is opened."""
    from html import escape

    header = _header(spec)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for line in lines:
        cells = (
            [line.label]
            + [_display(c, " ± ", " " + SINGLE_SEED_MARK) for c in line.cells]
            + _avg(spec, line)
            + line.extras
        )
        body.append(f'<tr class="{escape(line.kind)}">' + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    style = (
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "th,td{padding:.3em .8em;text-align:right;border-bottom:1px solid #ddd}"
        "th:first-child,td:first-child{text-align:left}tr.reference,tr.difference{color:#555}"
        "p{max-width:60em;color:#333;font-size:.9em}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(spec.title)}</title>'
        f"<style>{style}</style></head><body>\n<h2>{escape(spec.title)}</h2>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(body)
        + f"\n</tbody></table>\n<p>{escape(footnote)}</p>\n</body></html>\n"
    )
