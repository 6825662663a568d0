#!/usr/bin/env bash
# Snakemake runs this in the new sft env once its pip list is installed (a post-deploy script).
# flash-attn ships only an sdist whose setup.py imports torch: it builds against the env's torch,
# without build isolation. Its setup.py first fetches the prebuilt wheel of its GitHub release for
# this torch, CUDA and Python; without one it compiles (nvcc from the CUDA devel image; MAX_JOBS caps
# the parallel compilers). --no-deps: its requirements (torch, einops) are pinned in sft.yaml.
set -euo pipefail
python -m pip install --no-build-isolation --no-deps flash-attn==2.8.3
