#!/usr/bin/env bash
# `snakemake --profile slurm` looks for ./slurm and $XDG_CONFIG_HOME/snakemake/slurm
# (~/.config/snakemake/slurm), not ./profiles/slurm: link the profile where Snakemake looks, so
# the design card's command works as written from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake"
mkdir -p "$target"
ln -sfn "$PWD/profiles/slurm" "$target/slurm"
echo "linked $target/slurm -> $PWD/profiles/slurm"
