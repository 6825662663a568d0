#!/usr/bin/env bash
# Create .venv with everything the toy study and the tests need, from a bare machine.
# Idempotent: a second run only checks that the environment is complete.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import motab, snakemake, llamafactory, math_verify, torch" 2>/dev/null \
    || ! cmp -s requirements.lock.txt .venv/.requirements.lock.txt; then
    # The pinned set was resolved together (torch, transformers, LLaMA-Factory, Snakemake, ...).
    # pip's notes about this machine's absent local package folders are dropped from the output.
    quiet() { grep -v "^WARNING: Location '" || true; }
    .venv/bin/pip install --quiet --upgrade pip 2>&1 | quiet
    .venv/bin/pip install --quiet -r requirements.lock.txt 2>&1 | quiet
    .venv/bin/pip install --quiet --no-deps -e . 2>&1 | quiet
    cp requirements.lock.txt .venv/.requirements.lock.txt
fi
bash scripts/link_profiles.sh
echo "environment ready: .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
