"""From the files a user edits to the config the workflow plans from.

Layout (the Snakefile loads them in this order, each with `configfile:`, so Snakemake merges them
key by key and re-applies `--configfile`/`--config` after each one: the command line always wins):

- `config.yaml`: the catalogue (select, servers, containers, models, datasets, benchmarks) and
  `defaults` shared by every study;
- `studies/<study>.yaml`: one study each, written as `studies: {<study>: {...}}`;
- `studies/<study>.reference.tsv`: the published numbers its tables print beside ours (optional).

`compose` then fills in what the files leave out, before validation:
- each study's `resources.default` from `defaults.resources` (a study's own keys win);
- the `run_grid` form (students x methods) as plain runs;
- each table's `reference.rows` from the TSV (rows given in config win, value by value);
- the sweep and eval_epochs forms (motab.plan.sweeps);
- first of all, a `rehearsal:` block's toy stand-ins (motab.plan.rehearsal).
"""

from __future__ import annotations

import copy
import csv
from collections.abc import Mapping
from pathlib import Path

import yaml

from motab.errors import UserError
from motab.plan.rehearsal import RehearsalError, rehearse
from motab.plan.sweeps import expand_study

STUDIES_DIR = "studies"
REFERENCE_SUFFIX = ".reference.tsv"


class ComposeError(UserError):
    """A study file or reference table that cannot be composed; the message names file and key."""


def study_files(root: str | Path = ".") -> list[str]:
    """The study files under `root`, sorted, as paths relative to it (the Snakefile's configfiles)."""
    folder = Path(root) / STUDIES_DIR
    return sorted(f"{STUDIES_DIR}/{p.name}" for p in folder.glob("*.yaml"))


def yaml_syntax_error(path: str | Path) -> str | None:
    """`file:line:column: problem` for a YAML file that does not parse, else None. Snakemake's own
    `configfile:` says only "Config file is not valid JSON or YAML" at the Snakefile's line."""
    try:
        yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        context = f" ({exc.context})" if exc.context else ""
        return f"{where}: not valid YAML: {exc.problem}{context}"
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return f"{path}: not valid YAML: {exc}"
    return None


def config_files(root: str | Path = ".") -> list[str]:
    """config.yaml and the study files, in the order the Snakefile loads them, each parsed first:
    a syntax error stops the plan with its file, line and column (ComposeError)."""
    files = ["config.yaml", *study_files(root)]
    errors = [e for e in (yaml_syntax_error(Path(root) / name) for name in files) if e]
    if errors:
        raise ComposeError("\n".join(errors))
    return files


def study_file_errors(root: str | Path = ".") -> list[str]:
    """Study files that hold anything but their own study (`studies/x.yaml` is `studies: {x: {...}}`):
    another study's keys there would be merged silently into that study."""
    errors = []
    for name in study_files(root):
        data = yaml.safe_load((Path(root) / name).read_text(encoding="utf-8"))
        study = Path(name).stem
        if (
            not isinstance(data, Mapping)
            or list(data) != ["studies"]
            or not isinstance(data["studies"], Mapping)
            or list(data["studies"]) != [study]
        ):
            found = (
                sorted(data["studies"])
                if isinstance(data, Mapping) and isinstance(data.get("studies"), Mapping)
                else sorted(data)
                if isinstance(data, Mapping)
                else type(data).__name__
            )
            errors.append(
                f"{name}:1: expected `studies:` holding the one study {study!r} (the file's name), found {found}"
            )
    return errors


def merge(base: dict, update: Mapping) -> dict:
    """`base` updated key by key with `update`, as Snakemake merges config files (mappings recurse,
    anything else is replaced)."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = merge(dict(base[key]), value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def workflow_config(root: str | Path = ".", *overrides: str | Path) -> dict:
    """The config Snakemake starts from: config.yaml, the study files, then override files (not
    composed; `compose` does that). For tests and tools that read config without Snakemake."""
    config: dict = {}
    for name in ["config.yaml", *study_files(root), *overrides]:
        path = Path(root) / name
        merge(config, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return config


def _apply_defaults(study: dict, defaults: Mapping) -> None:
    shared = defaults.get("resources")
    if shared:
        resources = study.setdefault("resources", {})
        resources["default"] = dict(shared) | dict(resources.get("default", {}))


def expand_grid(study: str, cfg: Mapping) -> dict:
    """`runs` with the study's `run_grid` written out: per student a run `<student>` of its base model,
    and per (student, method) a run `<student>_<method>` = {kd: <method's kd><student's kd_suffix>,
    from: <student's model>, **kd_run, label: "<student label> + <method label>"}."""
    grid = cfg.get("run_grid")
    runs = dict(cfg.get("runs", {}))
    if not grid:
        return runs
    _check_grid(study, grid)
    generated: dict = {}
    for student, s in grid["students"].items():
        generated[student] = {"model": s["model"], "label": s.get("label", student)}
        for method, m in grid["methods"].items():
            generated[f"{student}_{method}"] = {
                "kd": m["kd"] + s.get("kd_suffix", ""),
                "from": s["model"],
                **grid.get("kd_run", {}),
                "label": f"{s.get('label', student)} + {m.get('label', method)}",
            }
    taken = sorted(set(generated) & set(runs))
    if taken:
        raise ComposeError(f"studies.{study}.runs: {taken} are also runs of studies.{study}.run_grid; rename one")
    return generated | runs


GRID_KEYS = {
    "": {"students", "methods", "kd_run"},
    "students": {"model", "label", "kd_suffix"},
    "methods": {"kd", "label"},
}


def _check_grid(study: str, grid) -> None:
    """The run_grid's shape, each finding naming its key (the schema sees only the runs it makes)."""
    where = f"studies.{study}.run_grid"
    if not isinstance(grid, Mapping) or set(grid) - GRID_KEYS[""] or not {"students", "methods"} <= set(grid):
        raise ComposeError(f"{where}: expected students, methods and optionally kd_run, found {grid!r}")
    for part, required in (("students", "model"), ("methods", "kd")):
        if not isinstance(grid[part], Mapping) or not grid[part]:
            raise ComposeError(f"{where}.{part}: expected a non-empty mapping of names to entries")
        for name, entry in grid[part].items():
            unknown = sorted(set(entry) - GRID_KEYS[part]) if isinstance(entry, Mapping) else None
            if unknown is None or unknown or not isinstance(entry.get(required), str):
                raise ComposeError(
                    f"{where}.{part}.{name}: expected {required} (a name) and only "
                    f"{sorted(GRID_KEYS[part])}, found {entry!r}"
                )
    if not isinstance(grid.get("kd_run", {}), Mapping):
        raise ComposeError(f"{where}.kd_run: expected a mapping of run keys (e.g. teacher: self)")


def _cell(text: str, where: str):
    """A TSV cell read as a YAML scalar, as the value would be written in config: "70.27" (quoted)
    stays text, 0.5512 is a number, 95.33±0.08 is text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ComposeError(f"{where}: not a value ({exc.problem})") from None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ComposeError(f"{where}: expected a number like 95.33±0.08, found {text!r}")
    return value


def read_references(path: str | Path) -> dict[str, dict[str, dict]]:
    """{table: {run: {benchmark | avg: value}}} of a reference TSV. Lines starting with # are
    comments; the first other line is the header `table, run, <benchmark>..., [avg]`; an empty cell
    is a value the source does not give."""
    tables: dict[str, dict[str, dict]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        lines = [(n, line) for n, line in enumerate(handle, 1) if line.strip() and not line.startswith("#")]
    if not lines:
        return tables
    reader = csv.reader([line for _, line in lines], delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader)
    if header[:2] != ["table", "run"] or len(header) < 3:
        raise ComposeError(
            f"{path}:{lines[0][0]}: the header must be table, run, then benchmark columns; found {header}"
        )
    for (number, _), cells in zip(lines[1:], reader):
        where = f"{path}:{number}"
        if len(cells) != len(header):
            raise ComposeError(f"{where}: {len(cells)} cells, the header has {len(header)}")
        table, run = cells[0], cells[1]
        if run in tables.setdefault(table, {}):
            raise ComposeError(f"{where}: run {run!r} of table {table!r} appears twice")
        tables[table][run] = {
            name: _cell(cell, f"{where}:{name}") for name, cell in zip(header[2:], cells[2:]) if cell.strip()
        }
    return tables


def _apply_references(study: str, cfg: dict, root: Path) -> None:
    path = root / STUDIES_DIR / f"{study}{REFERENCE_SUFFIX}"
    if not path.is_file():
        return
    tables = cfg.get("tables", {})
    for table, rows in read_references(path).items():
        reference = tables.get(table, {}).get("reference")
        if reference is None:
            raise ComposeError(
                f"{path}: table {table!r} has no studies.{study}.tables.{table}.reference "
                "(its label and source) in the study's config"
            )
        inline = reference.get("rows", {})
        reference["rows"] = {run: rows.get(run, {}) | inline.get(run, {}) for run in sorted(set(rows) | set(inline))}


def compose(config: Mapping, root: str | Path = ".") -> dict:
    """The config the workflow plans from: defaults, run grids, reference tables and sweeps filled in
    (the input is not changed). A `rehearsal:` block is applied first (motab.plan.rehearsal)."""
    try:
        config = rehearse(config)
    except RehearsalError as exc:
        raise ComposeError(str(exc)) from None
    out = dict(config)
    studies = {}
    for name, study in config["studies"].items():
        study = copy.deepcopy(dict(study))
        _apply_defaults(study, config.get("defaults", {}))
        study["runs"] = expand_grid(name, study)
        study.pop("run_grid", None)
        _apply_references(name, study, Path(root))
        studies[name] = expand_study(name, study)
    out["studies"] = studies
    return out
