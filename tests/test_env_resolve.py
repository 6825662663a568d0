"""pip's resolver accepts every stage environment and every pyproject extra, for the clusters'
CPython 3.11 on Linux x86_64, without installing (tests/envresolve.py says how; reaches PyPI).

A conda/apptainer run builds each env with pip; an env pip cannot resolve stops every rule that uses
it before any job starts (envs/synth.yaml's PyYAML pin against sglang[all]'s diffusion extra did)."""

from __future__ import annotations

import tomllib

import pytest
from envresolve import REPO, env_requirements, extra_requirements, resolve

ENVS = sorted(path.name for path in (REPO / "envs").glob("*.yaml"))
EXTRAS = sorted(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
# what the GPU stages must get: the CUDA 12.8 torch of the images, and the kernels their options name
EXPECTED = {
    "synth.yaml": {"torch": "2.9.1", "sglang": "0.5.9", "pyyaml": "6.0.3", "nvidia-cuda-runtime-cu12": "12.8.90"},
    "eval.yaml": {"torch": "2.9.1", "sglang": "0.5.9", "evalscope": "1.14.1"},
    "kd.yaml": {"torch": "2.9.1", "transformers": "4.57.1", "liger-kernel": "0.8.4", "einops": "0.8.2"},
    "sft.yaml": {
        "torch": "2.9.1",
        "transformers": "5.6.0",
        "liger-kernel": "0.8.5",
        "nvidia-cuda-runtime-cu12": "12.8.90",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("env", ENVS)
def test_every_stage_env_resolves_for_linux_cpython_311(env):
    picked = resolve(env_requirements(REPO / "envs" / env))
    wrong = {
        name: (picked.get(name), version)
        for name, version in EXPECTED.get(env, {}).items()
        if picked.get(name) != version
    }
    assert not wrong, f"envs/{env}: resolved vs expected {wrong}"
    cuda13 = sorted(name for name in picked if name.endswith("-cu13") or name == "nvidia-cuda-runtime")
    assert not cuda13, f"envs/{env} pulls CUDA 13 runtime wheels {cuda13} (driver >= 580)"


@pytest.mark.slow
@pytest.mark.parametrize("extra", EXTRAS)
def test_every_pyproject_extra_resolves_for_linux_cpython_311(extra):
    resolve(extra_requirements(extra))
