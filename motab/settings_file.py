"""`--config FILE` of `motab sft`, `motab synth` and `motab kd-train`: a stage's settings from a YAML
or JSON file (the keys of the study's block in config.yaml), with a JSON string of the command line
(`--params-json`, kd-train's `--config-json`: what the rules pass) over them. sft and synth check
the result against the config schema as the workflow checks config.yaml (check_settings); kd-train
checks it as a KDConfig. Apart from commandline.py so that only these commands depend on it
(motab/plan/codedeps.py)."""

from __future__ import annotations

import json
from pathlib import Path

from motab.errors import UserError


def settings_in_file(path: str, what: str) -> dict:
    """The object of settings in a YAML or JSON file. JSON is read as JSON (YAML 1.1 would read a
    number such as 1e-05, as json.dumps writes it, as a string). A file that is not an object raises
    UserError naming it (and the line, for bad YAML)."""
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            raise UserError(f"{where}: not valid YAML/JSON ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: expected a mapping of {what} settings, found {type(loaded).__name__}")
    return loaded


def settings_in_json(text: str, flag: str) -> dict:
    """The JSON object of settings a command-line flag carries; anything else raises UserError naming the flag."""
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{flag}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{flag}: expected a JSON object, found {type(loaded).__name__}")
    return loaded


def read_settings(config: str | None, params_json: str | None, what: str) -> dict:
    """The settings of a run: the object in the file `config` (as the study's block in config.yaml),
    then `params_json`'s keys over it (what the rules pass)."""
    if config is None and params_json is None:
        raise UserError(f"give the {what} settings: --config FILE (or --params-json JSON)")
    values: dict = {}
    if config is not None:
        values |= settings_in_file(config, what)
    if params_json is not None:
        values |= settings_in_json(params_json, "--params-json")
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
