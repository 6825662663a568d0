"""`--config FILE` of `motab sft` and `motab synth`: a stage's settings from a YAML or JSON file (the
keys of the study's block in config.yaml), checked against the config schema as the workflow checks
config.yaml, with `--params-json` (what the rules pass) over them. Apart from commandline.py so that
only these two commands depend on the config checks (motab/plan/codedeps.py)."""

from __future__ import annotations

import json
from pathlib import Path

from motab.errors import UserError


def read_settings(config: str | None, params_json: str | None, what: str) -> dict:
    """The settings of a run: the YAML or JSON object in the file `config` (as the study's block in
    config.yaml), then `params_json`'s keys over it (what the rules pass). A file or string that is
    not an object raises UserError naming it (and the line, for bad YAML)."""
    import yaml

    if config is None and params_json is None:
        raise UserError(f"give the {what} settings: --config FILE (or --params-json JSON)")
    values: dict = {}
    if config is not None:
        try:
            loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{config}:{mark.line + 1}" if mark is not None else config
            raise UserError(f"{where}: not valid YAML/JSON ({getattr(exc, 'problem', None) or exc})") from None
        if not isinstance(loaded, dict):
            raise UserError(f"{config}: expected a mapping of {what} settings, found {type(loaded).__name__}")
        values |= loaded
    if params_json is not None:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise UserError(f"--params-json: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(loaded, dict):
            raise UserError(f"--params-json: expected a JSON object, found {type(loaded).__name__}")
        values |= loaded
    return values


SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def check_settings(values: dict, block: str, where: str) -> None:
    """Check settings read from a file against the config schema's entry for them (`block`, a path
    under a study such as "sft" or "synth/motab"), as the workflow checks config.yaml; the first
    finding raises UserError naming the file and the key. Skipped where the schema is not beside the
    package (an installed wheel)."""
    if not SCHEMA.is_file():
        return
    import yaml

    from motab.schema_errors import schema_errors

    root = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    schema = {"$ref": "#/$defs/study/properties/" + "/properties/".join(block.split("/")), "$defs": root["$defs"]}
    if errors := schema_errors(values, schema):
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise UserError(f"{where}: " + "; ".join(errors[:3]) + more)
