"""pip's resolver accepts every stage environment and every pyproject extra, for the clusters'
CPython 3.11 on Linux x86_64, without installing (tests/envresolve.py says how; reaches PyPI).

A conda/apptainer run builds each env with pip; an env pip cannot resolve stops every rule that uses
it before any job starts (envs/synth.yaml's PyYAML pin against sglang[all]'s diffusion extra did)."""

from __future__ import annotations

import tomllib
from concurrent.futures import ThreadPoolExecutor

import pytest
from envresolve import REPO, Unresolvable, env_requirements, extra_requirements, resolve, stand_ins

ENVS = {f"envs/{p.name}": env_requirements(p) for p in sorted((REPO / "envs").glob("*.yaml"))}
EXTRAS = {
    f"pyproject[{extra}]": extra_requirements(extra)
    for extra in sorted(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
}
# what the GPU stages must get: the CUDA 12.8 torch of the images, and the kernels their options name
EXPECTED = {
    "envs/synth.yaml": {"torch": "2.9.1", "sglang": "0.5.9", "pyyaml": "6.0.3", "nvidia-cuda-runtime-cu12": "12.8.90"},
    "envs/eval.yaml": {"torch": "2.9.1", "sglang": "0.5.9", "evalscope": "1.14.1"},
    "envs/kd.yaml": {"torch": "2.9.1", "transformers": "4.57.1", "liger-kernel": "0.8.4", "einops": "0.8.2"},
    "envs/sft.yaml": {"torch": "2.9.1", "transformers": "5.6.0", "liger-kernel": "0.8.5", "einops": "0.8.2"},
}
WORKERS = 3  # pip mostly waits on the registry (range requests for each wheel's metadata)


def attempt(requirements: list[str]) -> dict[str, str] | Unresolvable:
    try:
        return resolve(requirements)
    except Unresolvable as exc:
        return exc


@pytest.fixture(scope="module")
def resolutions(request) -> dict:
    """The selected targets resolved side by side (one pip each), sdist metadata prepared first."""
    items = [item for item in request.session.items if hasattr(item, "callspec")]
    wanted = {item.callspec.params["target"] for item in items if "target" in item.callspec.params}
    targets = {key: reqs for key, reqs in (ENVS | EXTRAS).items() if key in wanted}
    for requirements in targets.values():
        stand_ins(requirements)
    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(zip(targets, pool.map(attempt, targets.values())))


def picked(resolutions: dict, target: str) -> dict[str, str]:
    result = resolutions[target]
    if isinstance(result, Unresolvable):
        raise AssertionError(f"{target}: pip's resolver refuses it:\n{result}")
    return result


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(ENVS))
def test_every_stage_env_resolves_for_linux_cpython_311(resolutions, target):
    versions = picked(resolutions, target)
    expected = EXPECTED.get(target, {})
    wrong = {name: (versions.get(name), version) for name, version in expected.items() if versions.get(name) != version}
    assert not wrong, f"{target}: resolved vs expected {wrong}"
    cuda13 = sorted(name for name in versions if name.endswith("-cu13") or name == "nvidia-cuda-runtime")
    assert not cuda13, f"{target} pulls CUDA 13 runtime wheels {cuda13} (driver >= 580)"


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(EXTRAS))
def test_every_pyproject_extra_resolves_for_linux_cpython_311(resolutions, target):
    picked(resolutions, target)
