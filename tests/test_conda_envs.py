"""`--software-deployment-method conda`: every rule names a stage environment in envs/, and the
environments pin what requirements.lock.txt pins (where they name a version at all)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LOCK = {
    name.lower(): version
    for name, version in (
        line.strip().split("==") for line in (REPO / "requirements.lock.txt").read_text().splitlines() if "==" in line
    )
}


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
        "envs/sft.yaml",
        "envs/kd.yaml",
        "envs/synth.yaml",
        "envs/eval.yaml",
        "envs/tables.yaml",
    }


# envs on SGLang 0.5.9's stack: their torch/transformers follow SGLang's own pins, not the local lock
GPU_STACK = {"synth.yaml", "eval.yaml", "kd.yaml"}
SGLANG_STACK = {"torch": "2.9.1", "transformers": "4.57.1", "sglang": "0.5.9"}


def test_every_env_pins_every_package_exactly():
    for path in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for requirement in pip:
            pinned = "==" in requirement or re.search(r"@ git\+\S+@[0-9a-f]{40}$", requirement)
            assert pinned, f"{path.name}: {requirement} is not pinned to one version (or one commit)"


def test_env_files_agree_with_the_lock_and_do_not_install_the_repo():
    for path in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for requirement in pip:
            assert not requirement.startswith("-e"), f"{path.name}: {requirement} resolves inside .snakemake/conda"
            name = re.sub(r"\[.*\]", "", requirement.split("==")[0]).lower()
            if path.name in GPU_STACK and name in SGLANG_STACK:
                assert requirement.endswith("==" + SGLANG_STACK[name]), f"{path.name}: {requirement}"
            elif "==" in requirement and name in LOCK:  # GPU-only packages (ray, deepspeed) are not in the lock
                version = requirement.split("==")[1]
                assert LOCK.get(name) == version, (
                    f"{path.name}: {requirement} but requirements.lock.txt has {LOCK.get(name)}"
                )


def test_gpu_stages_run_in_pinned_images_under_apptainer():
    """`--software-deployment-method apptainer conda`: each GPU rule names its stage's image from
    config `containers`, and every image is a fixed tag (never `latest`)."""
    texts = {path.name: path.read_text() for path in (REPO / "rules").glob("*.smk")}
    for rule, stage, smk in (
        ("synth", "synth", "synth.smk"),
        ("sft", "sft", "sft.smk"),
        ("kd", "kd", "kd.smk"),
        ("eval_generate", "eval", "eval.smk"),
        ("eval_evalscope", "eval", "eval.smk"),
        ("eval_critic", "eval", "eval.smk"),
    ):
        body = re.search(rf"^rule {rule}:\n((?:    .*\n|\n)*)", texts[smk], re.M).group(1)
        assert f'    container:\n        stage_container("{stage}")' in body, rule
    assert 'container:\n            stage_container("eval")' in texts["eval.smk"]  # the per-run eval rule
    containers = yaml.safe_load((REPO / "config.yaml").read_text())["containers"]
    assert set(containers) == {"synth", "eval", "kd", "sft"}
    for image in containers.values():
        assert image.startswith("docker://") and ":" in image.split("//")[1] and not image.endswith(":latest")
    assert containers["synth"].endswith("sgl059-torch291-cu128")  # SGLang 0.5.9, as envs/synth.yaml
