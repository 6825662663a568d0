"""`motab tables`: aggregate eval JSON files into markdown, CSV and LaTeX tables.

    motab tables --spec SPEC.json --evals E1.json E2.json ... --output-prefix PREFIX

SPEC: {"title", "metric" (e.g. "avg@4"), "scale" (e.g. 100), "decimals",
       "rows": [{"run", "label", "replicas" (optional)}], "benchmarks": [{"name", "label"}],
       "extra_columns": [{"label", "values": {run: value}}] (optional),
       "reference": {"label", "rows": {row label: {benchmark name | "avg": "95.33±0.08"}}} (optional),
       "note": a line printed under the table (optional; a rehearsal's substitutions)}

Rows are the spec's runs in spec order, columns its benchmarks in spec order. A cell is the mean
± sample standard deviation (ddof=1) over the eval seeds of that (run, benchmark), after scaling;
a single seed shows the mean alone, marked † and explained in the footnote. A row with training-seed
replicas (spec row "replicas": its runs, one per training seed) is the mean over all its evals, ±
the sample std across training seeds of each seed's mean over the eval seeds. "Avg" (only
over two or more benchmarks) is the equal-weight mean of the per-benchmark means. The LaTeX uses
booktabs rules; the HTML page is what the Snakemake report shows. A run with a reference row is
followed by the published values and the difference (ours - published).

The output is a function of the spec and the set of evals only: files are read and sorted, floats
summed exactly (math.fsum) and formatted once with fixed decimals; no timestamps; "\\n" endings.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from typing import Any

from motab.commandline import command_parser
from motab.jsonio import DataError, read_json_object, write_text
from motab.tables import render
from motab.tables.cells import Cell, Line, Spec, TableError, aggregate, fmt

__all__ = ["Cell", "Line", "Spec", "TableError", "aggregate", "build_tables", "load_evals", "parse_spec"]

_NUMBER_RE = re.compile(
    r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:(?:±|\+-|\+/-)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)))?\s*$"
)


# ----------------------------------------------------------------------------------------------
# input


def _need(obj: Any, field: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or field not in obj:
        raise TableError(f"{where}: missing field {field!r}")
    value = obj[field]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise TableError(f"{where}.{field}: expected {expected}, found {type(value).__name__} {value!r:.60}")
    return value


def _check_rows(rows: list, where: str) -> None:
    """Each row has a run and a label; its replicas (optional) are run names starting with its run,
    and no run is the replica of two rows."""
    for i, row in enumerate(rows):
        _need(row, "run", str, f"{where}.rows[{i}]")
        _need(row, "label", str, f"{where}.rows[{i}]")
        replicas = row.get("replicas", [row["run"]])
        if (
            not isinstance(replicas, list)
            or not replicas
            or replicas[0] != row["run"]
            or not all(isinstance(r, str) for r in replicas)
        ):
            raise TableError(
                f"{where}.rows[{i}].replicas: expected a list of run names starting with "
                f"{row['run']!r}, found {replicas!r}"
            )
    every = [r for row in rows for r in row.get("replicas", [row["run"]])]
    if len(set(every)) != len(every):
        raise TableError(
            f"{where}.rows: a run is the replica of two rows ({sorted({r for r in every if every.count(r) > 1})})"
        )


def _check_benchmarks(rows: list, benchmarks: list, where: str) -> None:
    """Each benchmark has a name and a label; row runs, row labels and benchmark names are unique."""
    for i, bench in enumerate(benchmarks):
        _need(bench, "name", str, f"{where}.benchmarks[{i}]")
        _need(bench, "label", str, f"{where}.benchmarks[{i}]")
    for field, items, key in (("rows", rows, "run"), ("rows", rows, "label"), ("benchmarks", benchmarks, "name")):
        values = [item[key] for item in items]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise TableError(f"{where}.{field}: duplicate {key} {dupes}")


def _parse_extra_columns(obj: dict, rows: list, where: str) -> list:
    """The spec's extra columns (default none), each with a label and values for runs of the spec."""
    extra = obj.get("extra_columns") or []
    if not isinstance(extra, list):
        raise TableError(f"{where}.extra_columns: expected a list")
    runs = {row["run"] for row in rows}
    for i, column in enumerate(extra):
        _need(column, "label", str, f"{where}.extra_columns[{i}]")
        values = _need(column, "values", dict, f"{where}.extra_columns[{i}]")
        unknown = sorted(set(values) - runs)
        if unknown:
            raise TableError(f"{where}.extra_columns[{i}].values: runs {unknown} are not rows of the spec")
    return extra


def _check_reference(reference: dict, rows: list, benchmarks: list, where: str) -> None:
    """The published reference: a label, and per row label of the spec, values like '95.33±0.08'
    for benchmarks of the spec or 'avg'."""
    _need(reference, "label", str, f"{where}.reference")
    ref_rows = _need(reference, "rows", dict, f"{where}.reference")
    labels = {row["label"] for row in rows}
    names = {bench["name"] for bench in benchmarks} | {"avg"}
    for label, values in ref_rows.items():
        if label not in labels:
            raise TableError(
                f"{where}.reference.rows: {label!r} is not a row label of the spec (labels: {sorted(labels)})"
            )
        if not isinstance(values, dict):
            raise TableError(f"{where}.reference.rows[{label!r}]: expected an object")
        for name, text in values.items():
            if name not in names:
                raise TableError(
                    f"{where}.reference.rows[{label!r}]: {name!r} is not a benchmark of the spec nor 'avg'"
                )
            if not isinstance(text, (str, int, float)) or isinstance(text, bool) or _published_mean(text) is None:
                raise TableError(
                    f"{where}.reference.rows[{label!r}][{name!r}]: expected a number like '95.33±0.08', found {text!r}"
                )


def parse_spec(obj: dict, where: str = "spec") -> Spec:
    """The table spec (see the module doc), checked field by field; TableError names the first bad one."""
    title = _need(obj, "title", str, where)
    metric = _need(obj, "metric", str, where)
    scale = float(_need(obj, "scale", (int, float), where))
    decimals = _need(obj, "decimals", int, where)
    if not 0 <= decimals <= 12:
        raise TableError(f"{where}.decimals: expected 0..12, found {decimals}")
    rows = _need(obj, "rows", list, where)
    benchmarks = _need(obj, "benchmarks", list, where)
    if not rows or not benchmarks:
        raise TableError(f"{where}: needs at least one row and one benchmark")
    _check_rows(rows, where)
    _check_benchmarks(rows, benchmarks, where)
    extra = _parse_extra_columns(obj, rows, where)
    reference = obj.get("reference")
    if reference is not None:
        _check_reference(reference, rows, benchmarks, where)
    note = obj.get("note", "")
    if not isinstance(note, str):
        raise TableError(f"{where}.note: expected text, found {note!r}")
    return Spec(title, metric, scale, decimals, rows, benchmarks, extra, reference, note)


def _published_mean(text: str | float) -> float | None:
    if isinstance(text, (int, float)):
        return float(text)
    match = _NUMBER_RE.match(text)
    return float(match.group(1)) if match else None


def load_evals(paths: Sequence[str | os.PathLike], spec: Spec) -> dict[tuple[str, str], dict[int, float]]:
    """{(row run, benchmark): {seed: metric value}} from the eval JSON files, checked against the
    spec; a row with replicas is keyed {(replica index, seed): value}."""
    row_of = {run: (row["run"], i) for row in spec.rows for i, run in enumerate(row.get("replicas", [row["run"]]))}
    replicated = {row["run"] for row in spec.rows if "replicas" in row}
    runs = list(row_of)
    names = [bench["name"] for bench in spec.benchmarks]
    values: dict[tuple[str, str], dict[int, float]] = {}
    origin: dict[tuple[str, str, int], str] = {}
    for path in sorted(str(p) for p in paths):
        try:
            with open(path, encoding="utf-8") as handle:
                obj = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataError(path, exc.lineno, None, f"not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(path, None, None, "expected a JSON object (an eval file)")
        for field, kind in (("run", str), ("benchmark", str), ("seed", int), ("metrics", dict)):
            if field not in obj:
                raise DataError(path, None, field, "missing field")
            if not isinstance(obj[field], kind) or isinstance(obj[field], bool):
                raise DataError(path, None, field, f"expected {kind.__name__}, found {type(obj[field]).__name__}")
        run, bench, seed = obj["run"], obj["benchmark"], obj["seed"]
        if run not in runs:
            raise DataError(path, None, "run", f"run {run!r} is not a row of the table spec (rows: {runs})")
        if bench not in names:
            raise DataError(
                path, None, "benchmark", f"benchmark {bench!r} is not a column of the table spec (benchmarks: {names})"
            )
        # "avg@1/flexible": the metric under another extraction mode graded beside the first;
        # "avg@n": each file's own n (the MOTAB release samples 1 for MATH-500, 8 for the others)
        name, _, mode = spec.metric.partition("/")
        metrics = obj.get("metrics_by_extraction", {}).get(mode, {}) if mode else obj["metrics"]
        if name.endswith("@n"):
            name = f"{name[:-2]}@{obj.get('n_samples')}"
        metric = metrics.get(name)
        if not isinstance(metric, (int, float)) or isinstance(metric, bool) or not math.isfinite(metric):
            field = f"metrics_by_extraction.{mode}.{name}" if mode else f"metrics.{name}"
            raise DataError(
                path, None, field, f"expected a finite number, found {metric!r} (metrics: {sorted(metrics)})"
            )
        key = (run, bench, seed)
        if key in origin:
            raise TableError(
                f"duplicate eval for run {run!r}, benchmark {bench!r}, seed {seed}: {origin[key]} and {path}"
            )
        origin[key] = path
        row, replica = row_of[run]
        values.setdefault((row, bench), {})[(replica, seed) if row in replicated else seed] = float(metric)
    missing = [
        f"({run!r}, {bench!r})"
        for run in runs
        for bench in names
        if not _has_eval(values, row_of[run], bench, run in replicated or row_of[run][0] in replicated)
    ]
    if missing:
        raise TableError(f"no eval file for (run, benchmark) {', '.join(missing)}")
    return values


def _has_eval(values: dict, row_replica: tuple[str, int], bench: str, replicated: bool) -> bool:
    row, replica = row_replica
    cell = values.get((row, bench), {})
    return any(key[0] == replica for key in cell) if replicated else bool(cell)


def build_lines(spec: Spec, values: dict[tuple[str, str], dict[int, float]]) -> list[Line]:
    d = spec.decimals
    lines: list[Line] = []
    references = (spec.reference or {}).get("rows", {})
    ref_label = (spec.reference or {}).get("label", "")
    for row in spec.rows:
        run, label = row["run"], row["label"]
        cells = [aggregate(values[(run, bench["name"])], spec.scale) for bench in spec.benchmarks]
        avg = math.fsum(c.mean for c in cells) / len(cells)
        extras = [_extra_text(column["values"].get(run), d) for column in spec.extra_columns]
        lines.append(
            Line(
                label,
                [(fmt(c.mean, d), fmt(c.std, d) if c.std is not None else "", c.count_text()) for c in cells],
                fmt(avg, d),
                extras,
                "ours",
            )
        )
        if label not in references:
            continue
        published = references[label]
        names = [bench["name"] for bench in spec.benchmarks]
        pub_cells, diff_cells = [], []
        for name, cell in zip(names, cells):
            if name in published:
                mean_text, std_text = _published_parts(published[name])
                pub_cells.append((mean_text, std_text, ""))
                diff_cells.append((fmt(cell.mean - _published_mean(published[name]), d, sign=True), "", ""))
            else:
                pub_cells.append(("", "", ""))
                diff_cells.append(("", "", ""))
        if "avg" in published:
            pub_avg = _published_parts(published["avg"])[0]
            diff_avg = fmt(avg - _published_mean(published["avg"]), d, sign=True)
        else:
            pub_avg = diff_avg = ""
        blank = ["" for _ in spec.extra_columns]
        lines.append(Line(f"{label} ({ref_label})", pub_cells, pub_avg, blank, "reference"))
        lines.append(Line(f"{label} (Δ ours − {ref_label})", diff_cells, diff_avg, blank, "difference"))
    return lines


def _published_parts(text: str | float) -> tuple[str, str]:
    if isinstance(text, (int, float)):
        return repr(float(text)) if isinstance(text, float) else str(text), ""
    match = _NUMBER_RE.match(text)
    return match.group(1), match.group(2) or ""


def _extra_text(value: Any, decimals: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return fmt(float(value), decimals)
    return str(value)


def build_tables(spec_obj: dict, eval_paths: Sequence[str | os.PathLike]) -> dict[str, str]:
    """{"md", "csv", "tex", "html"} texts for a spec (already parsed JSON) and eval files."""
    spec = parse_spec(spec_obj)
    values = load_evals(eval_paths, spec)
    lines = build_lines(spec, values)
    footnote = render.footnote(spec, values) + render.grading_note(eval_paths)
    return {
        "md": render.render_markdown(spec, lines, footnote),
        "csv": render.render_csv(spec, lines),
        "tex": render.render_latex(spec, lines, footnote),
        "html": render.render_html(spec, lines, footnote),
    }


def teacher_shares(pairs: list[str]) -> dict[str, float]:
    """{run: teacher_share} from RUN=STATS_JSON pairs (synth stats written by `motab synth`)."""
    shares = {}
    for pair in pairs:
        run, sep, path = pair.partition("=")
        if not sep:
            raise TableError(f"--teacher-share {pair!r}: expected RUN=STATS_JSON")
        with open(path, encoding="utf-8") as handle:
            shares[run] = json.load(handle)["teacher_share"]
    return shares


def main(argv: list[str]) -> int:
    parser = command_parser(
        "tables",
        __doc__.splitlines()[0],
        "motab tables --spec results/toy/tables/main.spec.json --evals results/toy/eval/*/*/seed*.json --output-prefix tables/main",
    )
    parser.add_argument("--spec", required=True, help="table spec JSON")
    parser.add_argument("--evals", required=True, nargs="+", help="eval JSON files")
    parser.add_argument("--output-prefix", required=True, help="writes PREFIX.md, PREFIX.csv, PREFIX.tex")
    parser.add_argument(
        "--teacher-share",
        nargs="*",
        default=[],
        metavar="RUN=STATS_JSON",
        help="add a 'Teacher share' column from the synth stats file feeding each run",
    )
    args = parser.parse_args(argv)
    spec_obj = read_json_object(args.spec)
    if args.teacher_share:
        spec_obj.setdefault("extra_columns", []).append(
            {"label": "Teacher share", "values": teacher_shares(args.teacher_share)}
        )
    try:
        texts = build_tables(spec_obj, args.evals)
    except TableError as exc:
        raise TableError(f"{args.spec}: {exc}") from None
    for ext, text in texts.items():
        write_text(f"{args.output_prefix}.{ext}", text)
    print(
        f"wrote {args.output_prefix}.md/.csv/.tex/.html ({len(spec_obj['rows'])} runs x "
        f"{len(spec_obj['benchmarks'])} benchmarks)"
    )
    return 0
