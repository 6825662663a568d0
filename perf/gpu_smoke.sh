#!/usr/bin/env bash
# The CUDA benchmarks in one go (one H100/H200, under 10 minutes; unrun until a device is lent).
#
#   bash perf/gpu_smoke.sh [OUT_DIR]        # OUT_DIR: where each benchmark's output goes ($OUT or results/gpu_smoke)
#
# liger-kernel: used when importable; else installed, without network and without touching the venv, from
# a wheel named by $LIGER_WHEEL (e.g. shared/wheels/liger_kernel-*.whl, carried with the working tree)
# into a temporary folder put on PYTHONPATH. Each benchmark has its own time limit, so one that hangs
# cannot eat the others' time; a failure is reported and the next one still runs. Exit status: the
# number of benchmarks that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT_DIR=${1:-${OUT:-results/gpu_smoke}}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1

if ! "$PY" -c "import liger_kernel" 2>/dev/null && [ -n "${LIGER_WHEEL:-}" ] && [ -f "$LIGER_WHEEL" ]; then
    LIGER_DIR=$(mktemp -d)
    "$PY" -m pip install --quiet --no-deps --no-index --target "$LIGER_DIR" "$LIGER_WHEEL" && export PYTHONPATH="$PYTHONPATH:$LIGER_DIR"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT_DIR/device.txt"

failed=0
run() {   # run NAME LIMIT_S COMMAND...
    local name=$1 limit=$2; shift 2
    echo "== $name: $*"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT_DIR/$name.txt" 2>"$OUT_DIR/$name.err"
    local rc=$?
    grep -v "^\s*$" "$OUT_DIR/$name.txt" | tail -n 12
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [ $rc -eq 0 ] || { failed=$((failed + 1)); tail -n 20 "$OUT_DIR/$name.err"; }
}

# KD loss against Liger's fused linear JSD (about 1 minute)
run peer_liger_jsd 150 "$PY" perf/peer_liger_jsd.py --device cuda --tokens 8192 --hidden 2048 --vocab 151936 \
    --dtype bfloat16 --runs 5
# chunked vs naive fkl on the GPU (the existing CPU benchmark's CUDA path; about 1 minute)
run kd_loss_cuda 150 "$PY" perf/kd_loss.py --device cuda --dtype bfloat16 --tokens 8192 --hidden 2048 \
    --variants naive,fused --runs 2
# KD training step against TRL's GKDTrainer (8 fresh processes; about 3-4 minutes)
run peer_kd_step_cuda 300 "$PY" perf/peer_kd_step.py --device cuda --prompts 8 --samples 4 --new-tokens 128 \
    --hidden 512 --layers 8 --steps 4 --runs 2

echo "gpu_smoke: $failed failed; outputs in $OUT_DIR"
exit $failed
