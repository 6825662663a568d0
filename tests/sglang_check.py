"""Parse SGLang launch_server argument lists with SGLang 0.5.9's own parser.

    PYTHONPATH=<unpacked sglang 0.5.9 wheel and its small import deps> python tests/sglang_check.py < argvs.json

prints one JSON line: [null or SGLang's error for each argument list]. The parser is the one
`python -m sglang.launch_server` builds (ServerArgs.add_cli_args on an argparse parser); ServerArgs'
__post_init__ (which reads the model's config from the hub and probes the GPU) does not run here.
IPython, which sglang.utils imports for notebook display only, is a stand-in module.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import types


def stand_in(name: str) -> None:
    for part in (name.split(".")[0], name):
        module = types.ModuleType(part)
        module.__path__ = []
        module.display = module.HTML = module.Markdown = lambda *a, **k: None
        sys.modules.setdefault(part, module)


def check(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(argv)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1]
    return None


if __name__ == "__main__":
    stand_in("IPython.display")
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    print(json.dumps([check(parser, argv) for argv in json.load(sys.stdin)]))
