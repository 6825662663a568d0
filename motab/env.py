"""`motab env`: what a bug report needs about this machine, as `trl env` gives it.

Prints motab's version, the platform and Python, the version of each tool of the stack (or "not
installed"), the GPUs torch sees, and whether the Hugging Face hub answers (HF_ENDPOINT, within
--timeout-s; not tried under HF_HUB_OFFLINE=1, which the stages honour too).
"""

from __future__ import annotations

import os
import platform
import time
import urllib.error
import urllib.request
from importlib import metadata

from motab import __version__
from motab.commandline import command_parser, positive_float

# the distributions whose versions decide what a stage does, in the order of the stages
STACK = ("torch", "transformers", "llamafactory", "evalscope", "sglang", "math-verify", "snakemake")
DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE = ("1", "on", "yes", "true")  # huggingface_hub's reading of a boolean variable


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def gpus() -> str:
    """The GPUs torch sees (name and memory), or why there are none."""
    try:
        import torch
    except ImportError:
        return "unknown (torch not installed)"
    if not torch.cuda.is_available():
        return f"none visible to torch (CUDA build: {torch.version.cuda or 'no'})"
    names = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        names.append(f"{index}: {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    return f"{len(names)} (CUDA {torch.version.cuda}): " + "; ".join(names)


def hub_status(environ: dict[str, str], timeout_s: float) -> str:
    """Whether the hub endpoint answers an HTTP request within timeout_s (any HTTP status counts:
    the server is reachable); skipped when HF_HUB_OFFLINE is set."""
    endpoint = environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    if environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE:
        return f"{endpoint}: not tried (offline: HF_HUB_OFFLINE={environ['HF_HUB_OFFLINE']})"
    start = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout_s) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{endpoint}: unreachable ({reason}; waited at most {timeout_s:g} s)"
    return f"{endpoint}: reachable (HTTP {status} in {time.monotonic() - start:.1f} s)"


def report(environ: dict[str, str], timeout_s: float) -> list[tuple[str, str]]:
    """(name, value) lines of the report, in print order."""
    lines = [
        ("motab", __version__),
        ("platform", platform.platform()),
        ("python", platform.python_version()),
    ]
    lines += [(name, version_of(name)) for name in STACK]
    lines += [("GPUs", gpus()), ("Hugging Face hub", hub_status(environ, timeout_s))]
    return lines


def main(argv: list[str]) -> int:
    parser = command_parser("env", __doc__, "HF_HUB_OFFLINE=1 motab env")
    parser.add_argument(
        "--timeout-s",
        type=positive_float,
        default=3.0,
        help="seconds to wait for the hub before calling it unreachable",
    )
    args = parser.parse_args(argv)
    lines = report(dict(os.environ), args.timeout_s)
    width = max(len(name) for name, _ in lines)
    print("\n".join(f"- {name + ':':<{width + 1}} {value}" for name, value in lines))
    return 0
