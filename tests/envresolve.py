"""pip's own resolver on a stage environment's pip list, for the cluster's interpreter and platform.

What a conda/apptainer run installs: each envs/<stage>.yaml pip list, then the pins of its
<stage>.post-deploy.sh (flash-attn), for CPython 3.11 on Linux x86_64 (glibc 2.28, the floor of torch's
own manylinux_2_28 wheels). `pip install --dry-run --report` runs the full resolver without installing.
Two kinds of requirement cannot be resolved as written from here:
- KDFlow's git requirement (no GitHub): its own requirement lines, recorded from the pinned commit in
  tests/fixtures/kdflow_requirements_3a7a21a.txt, stand in for it;
- sdist-only packages. The pinned ones (deepspeed, flash-attn: no Linux wheel) have their metadata
  prepared by pip on this machine (CPython 3.11, Linux x86_64, like the target), and their own
  requirements stand in; the ones others require (jieba, rouge_score, zhconv from evalscope; oss2 and
  crcmod from modelscope; connection_pool from snakemake) are built here into wheels, as pip builds
  them on the cluster, and offered to the resolver beside the registry's.
Only the registry counts: pip's configuration files and the PIP_* variables that add local wheel
folders, indexes or constraints are left out (PIP_INDEX_URL, a mirror, is kept)."""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
KDFLOW_RECORD = REPO / "tests" / "fixtures" / "kdflow_requirements_3a7a21a.txt"
KDFLOW_GIT = "git+https://github.com/songmzhang/KDFlow.git@3a7a21addad68341291f1c24e02d231c5dae7cb0"
# pinned in the envs, no wheel for Linux on the registry (deepspeed: Windows wheels only; flash-attn: none)
SDIST_ONLY = {"deepspeed", "flash-attn"}
# required by other packages, sdist only (their latest releases; all pure Python but crcmod, whose C
# extension is optional): the ones `pip wheel` builds when scripts/bootstrap.sh installs the lock
SDIST_DEPS = ("jieba", "rouge_score", "zhconv", "oss2", "crcmod", "connection_pool")
PYTHON = "3.11"
GLIBC_MINOR = 28
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",  # only the wheels built here from SDIST_DEPS: PyPI takes no wheel with this tag
]
# wheels' metadata by HTTP range requests (pip's fast-deps) where the index serves no separate metadata
# file: the resolver is the same, but it reads a few kB of each wheel instead of downloading torch and
# the CUDA wheels whole (GBs per env, minutes); pip falls back to whole downloads where ranges fail
FAST_METADATA = ["--use-feature=fast-deps"]
KEPT_PIP_VARIABLES = {"PIP_INDEX_URL", "PIP_CERT", "PIP_CACHE_DIR", "PIP_DEFAULT_TIMEOUT"}


WHY = re.compile(r"depends on|The user requested|The conflict is caused by")


class Unresolvable(AssertionError):
    """pip's resolver refused a requirement set; the message is pip's own error lines."""


def normal(name: str) -> str:
    """A distribution name as the registry compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def env_pip_list(env_file: Path) -> list[str]:
    """The `pip:` list of a conda environment file."""
    spec = yaml.safe_load(env_file.read_text())
    return next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))


def post_deploy_pins(env_file: Path) -> list[str]:
    """NAME==VERSION arguments of the `pip install` lines of the env's post-deploy script, if any."""
    script = env_file.with_name(env_file.stem + ".post-deploy.sh")
    if not script.is_file():
        return []
    lines = [line for line in script.read_text().splitlines() if "pip install" in line and not line.startswith("#")]
    return [word for line in lines for word in line.split() if re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==\S+", word)]


def env_requirements(env_file: Path) -> list[str]:
    """Everything the stage env installs: its pip list, then its post-deploy pins."""
    return env_pip_list(env_file) + post_deploy_pins(env_file)


def extra_requirements(extra: str) -> list[str]:
    """What `pip install motab-pipeline[extra]` asks for: the project's dependencies and the extra's."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"][extra]


def pip_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in KEPT_PIP_VARIABLES}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def pip_report(args: list[str], extra_env: dict | None = None) -> dict:
    """`pip install --dry-run --report` with `args`; pip's error lines as Unresolvable when it refuses."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        proc = subprocess.run(
            [*cmd, "--report", str(report), *args],
            capture_output=True,
            text=True,
            env=pip_env() | (extra_env or {}),
            timeout=600,
        )
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).splitlines()
            errors = [line.strip() for line in output if line.startswith("ERROR") or WHY.search(line)]
            raise Unresolvable("\n".join(errors) or proc.stderr[-3000:])
        return json.loads(report.read_text())


@functools.cache
def sdist_requirements(pin: str) -> tuple[str, ...]:
    """The requirements of an sdist-only pin (no extras), from the metadata pip prepares for it here.
    flash-attn's setup.py imports torch (this venv's) and skips its CUDA build for metadata."""
    report = pip_report(
        ["--no-deps", "--no-build-isolation", pin],
        {"FLASH_ATTENTION_SKIP_CUDA_BUILD": "TRUE", "DS_BUILD_OPS": "0"},
    )
    (item,) = report["install"]
    return tuple(r for r in item["metadata"].get("requires_dist", []) if "extra" not in str(Requirement(r).marker))


@functools.cache
def pure_sdist_wheels() -> str:
    """A folder of wheels built here from SDIST_DEPS, for the resolver's --find-links."""
    folder = tempfile.mkdtemp(prefix="motab-sdist-wheels-")
    atexit.register(shutil.rmtree, folder, True)
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", folder, *SDIST_DEPS]
    subprocess.run(cmd, check=True, env=pip_env(), timeout=600)
    return folder


def stand_ins(requirements: list[str]) -> list[str]:
    """The requirement list with KDFlow's git line and the sdist-only pins replaced by what they require."""
    out = []
    for line in requirements:
        if line.endswith(KDFLOW_GIT):
            out += [r for r in KDFLOW_RECORD.read_text().splitlines() if r and not r.startswith("#")]
        elif normal(Requirement(line).name) in SDIST_ONLY:
            out += list(sdist_requirements(line))
        else:
            out.append(line)
    return out


def resolve(requirements: list[str]) -> dict[str, str]:
    """{distribution: version} pip's resolver picks for `requirements` on the cluster's platform."""
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    args = ["--python-version", PYTHON, "--implementation", "cp", *platforms, "--only-binary=:all:", *FAST_METADATA]
    args += ["--find-links", pure_sdist_wheels()]
    report = pip_report([*args, *stand_ins(requirements)])
    return {normal(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
