"""What every `motab <command>` shares: its parser (program name `motab <command>` however it was
started, each option's default and one example in --help, a bad flag as one line) and the reading
of a settings file (`--config FILE` of sft and synth)."""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from motab.errors import UserError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description and example keep their line breaks; every option with a default shows it."""

    @staticmethod
    def shows_default(action: argparse.Action) -> bool:
        default = action.default
        return not (default is None or default is False or default == argparse.SUPPRESS or default == [])

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self.shows_default(action):  # argparse lists a help-less option bare
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not self.shows_default(action) or "%(default)" in text or "default" in text.lower():
            return text  # nothing to show, or the help already says it
        return (text + " " if text else "") + "(default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """A parser whose usage errors are one line (and point at --help) instead of usage + error."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def command_parser(command: str, description: str | None, example: str) -> CommandParser:
    """The parser of `motab <command>`; `example` is one working command line shown under --help."""
    return CommandParser(
        prog=f"motab {command}",
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=HelpFormatter,
    )


def positive_int(text: str) -> int:
    """A count that must be at least 1 (processes, threads, requests in flight)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, found {value}")
    return value


def positive_float(text: str) -> float:
    """A duration or limit that must be above 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, found {text}")
    return value


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

    from motab.config_check import schema_errors

    root = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    schema = {"$ref": "#/$defs/study/properties/" + "/properties/".join(block.split("/")), "$defs": root["$defs"]}
    if errors := schema_errors(values, schema):
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise UserError(f"{where}: " + "; ".join(errors[:3]) + more)
