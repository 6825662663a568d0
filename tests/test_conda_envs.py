"""`--software-deployment-method conda`: every rule names a stage environment in envs/, and the
environments pin what requirements.lock.txt pins (where they name a version at all)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LOCK = {name.lower(): version for name, version in
        (line.strip().split("==") for line in (REPO / "requirements.lock.txt").read_text().splitlines() if "==" in line)}


def rule_envs() -> dict[str, str]:
    """{rule: the env file its `conda:` directive names}, read from rules/*.smk."""
    envs = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for match in re.finditer(r"^rule (\w+):\n((?:    .*\n|\n)*)", path.read_text(), re.M):
            conda = re.search(r'^    conda:\n\s+"([^"]+)"', match.group(2), re.M)
            envs[match.group(1)] = conda and str((path.parent / conda.group(1)).resolve().relative_to(REPO))
    return envs


def test_every_rule_runs_in_a_stage_env_that_exists():
    envs = rule_envs()
    assert len(envs) >= 18, sorted(envs)
    missing = {rule: env for rule, env in envs.items() if env is None or not (REPO / env).is_file()}
    assert not missing, missing
    assert {envs["sft"], envs["kd"], envs["synth"], envs["eval_grade"], envs["table"]} == {
        "envs/sft.yaml", "envs/kd.yaml", "envs/synth.yaml", "envs/eval.yaml", "envs/tables.yaml"}


def test_env_files_agree_with_the_lock_and_do_not_install_the_repo():
    for path in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for requirement in pip:
            assert not requirement.startswith("-e"), f"{path.name}: {requirement} resolves inside .snakemake/conda"
            if "==" in requirement:
                name, version = requirement.split("==")
                name = re.sub(r"\[.*\]", "", name).lower()
                assert LOCK.get(name) == version, f"{path.name}: {requirement} but requirements.lock.txt has {LOCK.get(name)}"
