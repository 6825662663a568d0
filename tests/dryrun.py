"""Dry runs of the workflow in-process (a plan in ~1 s instead of a Snakemake start-up per call),
and a copy of the workflow whose outputs all exist and are recorded as up to date.

`plan_many` runs many plans in one child process whose PYTHONPATH is the copy, so the jobs' code
inputs are the copy's package files (which a test may edit): `python dryrun.py WORKDIR` reads
[{"configfiles": [...], "edit": "motab/x.py" or null}, ...] on stdin and prints the plans as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_FILES = ("Snakefile", "config.yaml")
WORKFLOW_DIRS = ("rules", "schemas", "profiles", "envs", "studies", "scripts")

Job = tuple[str, tuple[tuple[str, str], ...]]  # (rule, sorted wildcards)


def copy_workflow(dest: Path, with_package: bool = False) -> Path:
    for name in WORKFLOW_FILES:
        shutil.copy(REPO / name, dest / name)
    for name in WORKFLOW_DIRS + (("motab",) if with_package else ()):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _dag(workdir: Path, configfiles: list[Path], targets: tuple[str, ...] = (), config: dict | None = None):
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
    )

    api = SnakemakeApi(OutputSettings(quiet={Quietness.ALL}))
    with api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=list(configfiles), config=config or {}),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        dag_api = workflow_api.dag(DAGSettings(targets=set(targets)))
        workflow = workflow_api._workflow
        workflow.dag_settings = dag_api.dag_settings
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        return list(workflow.dag.needrun_jobs())


def planned(
    workdir: Path, configfiles: list[Path], targets: tuple[str, ...] = (), config: dict | None = None
) -> set[Job]:
    """The jobs `snakemake -n` would run, as (rule, wildcards) pairs (`config`: as --config)."""
    cwd = os.getcwd()
    try:
        jobs = _dag(workdir, configfiles, targets, config)
    finally:
        os.chdir(cwd)
    return {(job.rule.name, tuple(sorted(job.wildcards_dict.items()))) for job in jobs}


def make_up_to_date(workdir: Path, configfiles: list[Path], env: dict[str, str]) -> int:
    """Create every output of the plan (empty files, empty folders for directory outputs), then let
    `snakemake --touch` record them as produced by the current config and code. Returns the job count."""
    cwd = os.getcwd()
    try:
        jobs = _dag(workdir, configfiles)
        for job in jobs:
            for output in job.output:
                path = workdir / str(output)
                if output.is_directory:
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
    finally:
        os.chdir(cwd)
    proc = subprocess.run(
        [SNAKEMAKE, "--touch", "--forceall", "--cores", "1", "--configfile", *map(str, configfiles)],
        check=False,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return len(jobs)


def plan_many(workdir: Path, requests: list[dict], env: dict[str, str]) -> list[set[Job]]:
    proc = subprocess.run(
        [sys.executable, __file__, str(workdir)],
        input=json.dumps(requests),
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return [
        {(rule, tuple(tuple(pair) for pair in wildcards)) for rule, wildcards in plan}
        for plan in json.loads(proc.stdout.splitlines()[-1])
    ]


def _edited_plan(workdir: Path, request: dict) -> list:
    configfiles = [workdir / name for name in request["configfiles"]]
    if not request.get("edit"):
        return sorted(planned(workdir, configfiles))
    path = workdir / request["edit"]
    source, before = path.read_text(), path.stat()
    future = time.time() + 3600
    try:
        # An edit: Snakemake skips inputs whose mtime changed but whose checksum did not.
        path.write_text(source + "\n# edited\n")
        os.utime(path, (future, future))
        return sorted(planned(workdir, configfiles))
    finally:
        path.write_text(source)
        os.utime(path, (before.st_atime, before.st_mtime))


if __name__ == "__main__":
    import logging

    logging.disable(logging.INFO)
    root = Path(sys.argv[1])
    plans = [_edited_plan(root, request) for request in json.loads(sys.stdin.read())]
    print(json.dumps(plans))
