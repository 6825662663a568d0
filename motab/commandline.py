"""What every `motab <command>` shares: its parser (program name `motab <command>` however it was
started, each option's default and one example in --help, a bad flag as one line) and the checked
number types of its flags."""

from __future__ import annotations

import argparse
import copy
import sys


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
