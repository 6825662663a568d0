"""Start an inference server for the length of a `with` block, and always stop it.

    with serving(LOCAL_SERVER, model="models/student", log_path="logs/server.log") as url:
        ...  # talk HTTP to url

The command is a template from config with placeholders {python}, {model}, {host}, {port}; the
port is a free one picked here. The server runs in its own process group, which is SIGTERMed (then
SIGKILLed after 10 s) on exit from the block, exceptions included, and gets SIGTERM when the job
dies, even by SIGKILL (motab.children).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from motab.children import die_with_parent, stop_process_group
from motab.jobenv import JobError, child_env
from motab.serving.placement import Placement, server_args, visible_devices

LOCAL_SERVER = "{python} -m motab serve --model {model} --host {host} --port {port}"
SGLANG_SERVER_EXAMPLE = (
    "python -m sglang.launch_server --model-path {model} --host {host} --port {port}"
    " --tp-size 4 --dp-size 1 --enable-deterministic-inference"
)


# seconds a server has to answer /health: a large model loading from a network filesystem takes
# minutes (the rules pass each study's resources.<stage>.server_startup_s)
STARTUP_TIMEOUT_S = 1200.0


class ServerStartError(JobError):
    """The server exited or never became healthy; the message carries the log's tail."""


def render_command(template: str, **values) -> list[str]:
    """Fill the template's placeholders (each value shell-quoted) and split it into argv."""
    quoted = {key: shlex.quote(str(value)) for key, value in values.items()}
    try:
        return shlex.split(template.format(**quoted))
    except KeyError as exc:
        raise ValueError(
            f"server command {template!r}: unknown placeholder {{{exc.args[0]}}}; "
            f"known: {', '.join('{' + k + '}' for k in sorted(values))}"
        ) from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: str | os.PathLike, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def server_env(placement: Placement | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: the job's tools first on PATH, and only its placed GPUs visible."""
    env = child_env(env)
    if placement is not None:
        devices = visible_devices(placement, env.get("CUDA_VISIBLE_DEVICES"))
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
    return env


@contextmanager
def serving(
    command: str,
    model: str,
    log_path: str | os.PathLike,
    host: str = "127.0.0.1",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    placement: Placement | None = None,
) -> Iterator[str]:
    """Run the server `command` for `model` and yield its base URL once /health answers 200.
    `placement` (motab.serving.placement) picks the job's GPUs it sees and, where servers share
    GPUs, SGLang's --mem-fraction-static."""
    port = free_port(host)
    argv = render_command(command, python=sys.executable, model=model, host=host, port=port)
    if placement is not None:
        argv += server_args(argv, placement)
    env = server_env(placement)
    url = f"http://{host}:{port}"
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        gpus = f" (CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']})" if "CUDA_VISIBLE_DEVICES" in env else ""
        log.write(f"[motab] starting: {shlex.join(argv)}{gpus}\n".encode())
        log.flush()
        # child_env: a server command that names `python` or a console script gets this environment's
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),
        )
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not _healthy(url):
            if proc.poll() is not None:
                raise ServerStartError(
                    f"the server of {model} exited with code {proc.returncode} before becoming healthy "
                    f"(its log: {log_path}): "
                    f"{shlex.join(argv)}\nlast lines of {log_path}:\n{log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"the server of {model} did not answer {url}/health within {startup_timeout_s:.0f} s "
                    f"(raise the study's resources.<stage>.server_startup_s if it was still loading); "
                    f"its log: {log_path}\ncommand: {shlex.join(argv)}\nlast lines of {log_path}:\n{log_tail(log_path)}"
                )
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(proc)


def server_or_url(
    url: str | None,
    command: str,
    model: str,
    log_path: str | os.PathLike,
    startup_timeout_s: float,
    placement_json: str,
) -> AbstractContextManager[str]:
    """The eval commands' server: `url` when the caller runs one already (--server-url), else a
    `serving` block for `model` on the job's GPUs (--placement JSON, its "model" entry)."""
    from motab.serving.placement import from_json

    if url:
        return nullcontext(url)
    placement = from_json(placement_json).get("model")
    return serving(command, model, log_path, startup_timeout_s=startup_timeout_s, placement=placement)
