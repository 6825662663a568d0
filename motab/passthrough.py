"""Options a study passes to a tool unchanged: `llamafactory:` (keys of LLaMA-Factory's YAML),
`kdflow:` (KDFlow's --flags) and `sglang:` (SGLang's launch_server --flags).

The schema checks only their types, never their names, so any option the tool knows (a new
LLaMA-Factory key such as `enable_liger_kernel`, an SGLang flag such as `--chunked-prefill-size`)
works without a change here. The keys the pipeline itself decides (paths, the model, the GPUs) stay
the pipeline's: setting one is an error naming it, as a silent override would break the DAG's files.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def merge_options(ours: dict, extra: dict | None, owned: Iterable[str], where: str) -> dict:
    """`ours` with `extra` on top (the user's value wins), except for `owned` keys (an error)."""
    extra = extra or {}
    if not isinstance(extra, dict):
        raise ValueError(f"{where}: expected a mapping of option: value, found {type(extra).__name__}")
    clash = sorted(set(extra) & set(owned))
    if clash:
        raise ValueError(
            f"{where}: {', '.join(clash)} {'is' if len(clash) == 1 else 'are'} set by the pipeline "
            f"(from the run's files and resources), not by a pass-through option"
        )
    return {**ours, **extra}


def _flag_name(key: str) -> str:
    return "--" + key.lstrip("-").replace("_", "-")


def cli_flags(options: dict | None, underscores: bool = False) -> list[str]:
    """`{key: value}` as command-line flags: True -> `--key`, False/None -> nothing, a list ->
    `--key a b`, anything else -> `--key value`. SGLang spells flags with hyphens (`chunked_prefill_size`
    becomes `--chunked-prefill-size`); `underscores` keeps the key as written (KDFlow's flags)."""
    argv: list[str] = []
    for key, value in (options or {}).items():
        flag = "--" + key.lstrip("-") if underscores else _flag_name(key)
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            argv += [flag, *(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def flag_names(argv: list[str]) -> set[str]:
    """The --flags an argv (or a command template's words) already sets, hyphen-normalised."""
    return {_flag_name(word.split("=", 1)[0]) for word in argv if word.startswith("--")}


def extend_command(template: str, options: dict | None, where: str) -> str:
    """A server command template with the `sglang:` options appended; a flag the template already
    sets (the model, host, port, --tp-size, ...) is an error naming it."""
    extra = cli_flags(options)
    if not extra:
        return template
    clash = sorted(flag_names(extra) & flag_names(template.split()))
    if clash:
        raise ValueError(
            f"{where}: {', '.join(clash)} already in the server command (servers.<name>): "
            f"change it there, not in the pass-through block"
        )
    return template + " " + " ".join(shlex.quote(word) if "{" not in word else word for word in extra)
