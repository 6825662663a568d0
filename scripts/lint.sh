#!/usr/bin/env bash
# The lint CI runs before the tests; any finding fails it. Rules: pyproject.toml [tool.ruff] and
# [tool.snakefmt]. Fix with: .venv/bin/ruff check --fix . && .venv/bin/ruff format . && .venv/bin/snakefmt Snakefile rules
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/snakefmt --check Snakefile rules
.venv/bin/snakemake --lint
echo "lint: clean"
