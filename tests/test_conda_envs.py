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
            if not re.search(r"^    (shell|run|script):", match.group(2), re.M):
                continue  # a target rule (e.g. `download`): it runs nothing itself
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


# envs on SGLang 0.5.9's stack: their torch/transformers follow SGLang's own pins, not the local lock;
# liger-kernel 0.8.4 there, the last release that imports with transformers 4.x
GPU_STACK = {"synth.yaml", "eval.yaml", "kd.yaml"}
SGLANG_STACK = {"torch": "2.9.1", "transformers": "4.57.1", "sglang": "0.5.9", "liger-kernel": "0.8.4"}
# the sft env keeps the lock's transformers but takes torch 2.9.1, whose wheels are CUDA 12.8 like the
# sft image (the lock's torch 2.14.1 brings CUDA 13.0 wheels, driver >= 580)
CUDA12_TORCH = {"torch": "2.9.1"}


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
            elif path.name == "sft.yaml" and name in CUDA12_TORCH:
                assert requirement.endswith("==" + CUDA12_TORCH[name]), f"{path.name}: {requirement}"
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


def test_gpu_envs_install_sglang_without_extras():
    """sglang[all] pulls the diffusion extra, whose PyYAML==6.0.1 pin no env with PyYAML 6.0.3 can meet."""
    for name in sorted(GPU_STACK):
        pip = yaml.safe_load((REPO / "envs" / name).read_text())["dependencies"][-1]["pip"]
        assert "sglang==0.5.9" in pip, f"{name}: {[r for r in pip if r.startswith('sglang')]}"


def test_flash_attn_installs_after_torch_in_the_envs_that_need_it():
    """flash-attn's sdist imports torch in setup.py: pip cannot build it inside the env's own list
    (build isolation has no torch), so a post-deploy script, which Snakemake runs in the new env,
    installs it without build isolation; its other requirement, einops, is in the list."""
    for stage in ("sft", "kd"):
        pip = yaml.safe_load((REPO / "envs" / f"{stage}.yaml").read_text())["dependencies"][-1]["pip"]
        assert not [r for r in pip if r.startswith(("flash-attn", "flash_attn"))], stage
        assert f"einops=={LOCK['einops']}" in pip, stage
        script = (REPO / "envs" / f"{stage}.post-deploy.sh").read_text()
        assert "pip install --no-build-isolation --no-deps flash-attn==2.8.3" in script, stage
