"""`motab plan-memory`: the plan's GPU memory estimates as a table (motab/plan/memory.py).

    motab plan-memory                         # every study of config.yaml + studies/*.yaml, TSV on stdout
    motab plan-memory --study motab --configfile my.yaml --tsv mem.tsv --html mem.html

Run by hand it composes the config as the Snakefile does (config.yaml, the study files, then each
--configfile). The workflow writes it per study (rule gpu_memory: results/<study>/report/
gpu_memory.{tsv,html}), handing over the plan's own estimates (--fits-json). docs/kd.md reads it.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from motab.commandline import command_parser
from motab.plan import Study, compose, study_fits, workflow_config
from motab.plan.memory import Fit, fit_table


def config_fits(root: str, configfiles: list[str], studies: list[str]) -> list[Fit]:
    config = workflow_config(root, *configfiles)
    config.update(compose(config))
    names = studies or sorted(config["studies"])
    unknown = sorted(set(names) - set(config["studies"]))
    if unknown:
        raise SystemExit(f"motab plan-memory: unknown study {unknown[0]!r} (studies: {sorted(config['studies'])})")
    return [fit for name in names for fit in study_fits(Study.of(config, name))]


def to_html(tsv: str, title: str) -> str:
    rows = [line.split("\t") for line in tsv.splitlines()]
    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>\n" for row in rows[1:])
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title></head><body>\n'
        f"<h1>{escape(title)}</h1>\n<table>\n<tr>{head}</tr>\n{body}</table>\n"
        "<p>Per GPU: weights, and for what is trained its gradients and optimizer state; activations and the "
        "KV cache are not counted (docs/kd.md).</p>\n</body></html>\n"
    )


def main(argv: list[str]) -> int:
    p = command_parser("plan-memory", __doc__.split("\n")[0], "motab plan-memory --study pwopsd --tsv memory.tsv")
    p.add_argument("--root", default=".", help="the workflow folder (config.yaml, studies/)")
    p.add_argument("--configfile", action="append", default=[], help="an override file, as Snakemake's")
    p.add_argument("--study", action="append", default=[], help="only this study (repeatable)")
    p.add_argument("--fits-json", help="the plan's estimates (the workflow's rule), instead of the config")
    p.add_argument("--tsv", help="write the table here (default: stdout)")
    p.add_argument("--html", help="also as an HTML page (the workflow's report)")
    args = p.parse_args(argv)
    if args.fits_json:
        fits = [Fit(**entry) for entry in json.loads(args.fits_json)]
    else:
        fits = config_fits(args.root, args.configfile, args.study)
    table = fit_table(fits)
    if args.tsv:
        Path(args.tsv).parent.mkdir(parents=True, exist_ok=True)
        Path(args.tsv).write_text(table, encoding="utf-8")
    else:
        print(table, end="")
    if args.html:
        title = "GPU memory per GPU: " + ", ".join(sorted({f.study for f in fits}))
        Path(args.html).write_text(to_html(table, title), encoding="utf-8")
    return 0
