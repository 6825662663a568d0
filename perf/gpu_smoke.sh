#!/usr/bin/env bash
# What a person with one GPU runs first (one H100/H200 here, under 10 minutes). It has not been run
# on a GPU yet: no device was lent to the sessions that wrote it.
#
#   ./scripts/bootstrap.sh && bash perf/gpu_smoke.sh [OUT_DIR]   # OUT_DIR: $OUT or results/gpu_smoke
#
# Needs: an NVIDIA driver and `nvidia-smi`, the .venv of scripts/bootstrap.sh (its torch must see the
# GPU: the lock's torch 2.14.1 wheels are built for CUDA 13.0, driver >= 580), no network. It prints,
# each step with its exit status and seconds:
#   stack      the device, driver, torch/CUDA versions and which GPU tools import (sglang,
#              llamafactory, deepspeed, liger_kernel, flash_attn, evalscope);
#   toy_kd     the toy's tokenizer and models built (CPU), then the built-in KD trainer for 20 steps on
#              CUDA twice from the same inputs: its loss log, tokens/s, peak GPU memory, and whether
#              the two runs wrote the same checkpoint bytes (same GPU, same inputs);
#   then the CUDA benchmarks of perf/README.md (Liger JSD, chunked vs naive loss, KD step vs TRL).
#
# liger-kernel comes with the lock (requirements.lock.txt). Each benchmark has its own time limit, so one that hangs
# cannot eat the others' time; a failure is reported and the next one still runs. Exit status: the
# number of benchmarks that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT_DIR=${1:-${OUT:-results/gpu_smoke}}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1

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

# what this machine has: the GPU, the driver, torch's CUDA and the GPU tools that import
run stack 120 "$PY" - <<'PY'
import importlib, importlib.metadata as md, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"gpu{i}", p.name, f"sm{p.major}{p.minor}", f"{p.total_memory / 2**30:.1f} GiB")
for name in ("sglang", "llamafactory", "deepspeed", "liger_kernel", "flash_attn", "evalscope"):
    try:
        importlib.import_module(name)
        print(name, md.version(name.replace("_", "-")))
    except Exception as error:  # absent or broken: say which, the other steps still run
        print(name, "not importable:", type(error).__name__, str(error)[:120])
raise SystemExit(0 if torch.cuda.is_available() else 1)
PY

# the toy's inputs through Snakemake (CPU, about 2 minutes), then KD on CUDA twice from them
toy_kd() {
    local toy=results/toy
    .venv/bin/snakemake "$toy/models/toy-teacher" "$toy/models/toy-student" "$toy/kd_data/toy.jsonl" \
        --cores "$(nproc)" --quiet rules || return 1
    local config='{"engine":"builtin","loss":"rkl","steps":20,"prompts_per_step":32,"samples_per_prompt":4,"max_new_tokens":48,"temperature":0.6,"lr":0.0003,"seed":0}'
    for copy in a b; do
        "$PY" - "$toy" "$OUT_DIR/toy_kd_$copy" "$config" <<'PY' || return 1
import csv, sys, torch
from motab.cli import main
toy, out, config = sys.argv[1:]
log = f"{out}.progress.csv"
argv = ["kd-train", "--student", f"{toy}/models/toy-student", "--teacher", f"{toy}/models/toy-teacher",
        "--prompts", f"{toy}/kd_data/toy.jsonl", "--output", out, "--config-json", config, "--log-csv", log]
assert main(argv) == 0
rows = list(csv.DictReader(open(log)))
per_step = 32 * 4  # prompts_per_step x samples_per_prompt; rollout_tokens is the mean per rollout
tokens = sum(float(r["rollout_tokens"]) * per_step for r in rows)
seconds = sum(float(r["seconds"]) for r in rows)
print(f"{out}: {len(rows)} steps, last loss {rows[-1]['loss']}, {tokens / seconds:.0f} rollout tokens/s,"
      f" peak GPU memory {torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0:.0f} MiB")
PY
    done
    if cmp -s "$OUT_DIR/toy_kd_a/model.safetensors" "$OUT_DIR/toy_kd_b/model.safetensors"; then
        echo "two CUDA runs: the same checkpoint bytes"
    else
        echo "two CUDA runs: different checkpoint bytes (nondeterministic kernels on this GPU)"
    fi
}
export -f toy_kd
export PY OUT_DIR
run toy_kd 420 bash -c toy_kd

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
