"""The KD loss against Liger's fused linear JSD on CUDA: time and peak memory of forward + backward.

    python perf/peer_liger_jsd.py --device cuda [--tokens 8192 --hidden 2048 --vocab 151936
                                                      --dtype bfloat16 --chunk-tokens 1024 --runs 5]

Same inputs for both (seeded): student hidden states [tokens, hidden] with grad, a student head
Linear(hidden, vocab) with grad, teacher hidden states and a frozen teacher head, every token valid;
the generalized JSD at beta 0.5 (symmetric, so both libraries' conventions for beta agree), temperature 1,
mean over tokens, then backward (gradients of the student's hidden states and head).
- ours: motab.losses.divergences.chunked_token_divergence(..., "jsd", beta=0.5, chunk_tokens), the
  trainer's loss (logits of --chunk-tokens tokens at a time, in float32, gradients in forward);
- peer: liger_kernel.transformers.LigerFusedLinearJSD(jsd_beta=0.5) (Triton: the linear layer fused
  with the JSD, chunked by Liger itself).
One process, one untimed warm-up call per side (CUDA context, Triton compilation), then --runs rounds
interleaved (ours, Liger); each call timed between torch.cuda.synchronize() calls, its memory as
torch.cuda.max_memory_allocated after a reset, less what was allocated before it (the inputs).
Printed: medians per side, the loss values (they should agree), and the ratio ours/peer of time and of
memory above the inputs (below 1: ours is faster / smaller). Without CUDA or without liger-kernel it
prints why and exits 0 (pip install liger-kernel: a small wheel; it needs triton, which CUDA torch has).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def unavailable(device: str) -> str | None:
    """Why the benchmark cannot run here, or None."""
    import torch

    if device != "cuda":
        return "Liger's kernels are Triton kernels for CUDA: run with --device cuda"
    if not torch.cuda.is_available():
        return "--device cuda but torch sees no CUDA device"
    try:
        import liger_kernel.transformers  # noqa: F401
    except ImportError as exc:
        return f"liger-kernel is not installed ({exc}): pip install liger-kernel"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--chunk-tokens", type=int, default=1024, help="ours: tokens per chunk of logits")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    reason = unavailable(args.device)
    if reason:
        print(f"skipped: {reason}")
        return 0
    import torch
    from liger_kernel.transformers import LigerFusedLinearJSD

    from motab.losses.divergences import chunked_token_divergence

    torch.manual_seed(0)
    dev, dtype = torch.device("cuda"), getattr(torch, args.dtype)
    student_hidden = torch.randn(args.tokens, args.hidden, device=dev, dtype=dtype).requires_grad_(True)
    teacher_hidden = torch.randn(args.tokens, args.hidden, device=dev, dtype=dtype)
    student_head = torch.nn.Linear(args.hidden, args.vocab, bias=False, device=dev, dtype=dtype)
    teacher_head = torch.nn.Linear(args.hidden, args.vocab, bias=False, device=dev, dtype=dtype).requires_grad_(False)
    mask = torch.ones(args.tokens, dtype=torch.bool, device=dev)
    liger = LigerFusedLinearJSD(jsd_beta=0.5, temperature=1.0)

    def ours() -> torch.Tensor:
        return chunked_token_divergence(
            student_hidden,
            student_head,
            teacher_hidden,
            mask,
            "jsd",
            teacher_head=teacher_head,
            beta=0.5,
            chunk_tokens=args.chunk_tokens,
        )

    def peer() -> torch.Tensor:
        return liger(student_hidden, student_head.weight, teacher_hidden, teacher_head.weight)

    def measure(fn) -> dict:
        student_hidden.grad = student_head.weight.grad = None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        loss = fn()
        loss.backward()
        torch.cuda.synchronize()
        return {
            "seconds": time.perf_counter() - start,
            "extra_mb": (torch.cuda.max_memory_allocated() - before) / 2**20,
            "loss": loss.item(),
        }

    sides = {"ours": ours, "peer": peer}
    for fn in sides.values():
        measure(fn)  # warm-up
    got: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(args.runs):
        for name, fn in sides.items():
            got[name].append(measure(fn))
    print(
        f"JSD (beta 0.5) forward+backward on {torch.cuda.get_device_name()}: tokens {args.tokens}, hidden "
        f"{args.hidden}, vocab {args.vocab}, {args.dtype}; ours chunk {args.chunk_tokens}; median of {args.runs}"
    )
    med = {}
    for name in sides:
        med[name] = {k: statistics.median(r[k] for r in got[name]) for k in ("seconds", "extra_mb")}
        label = "ours chunked_token_divergence" if name == "ours" else "peer LigerFusedLinearJSD"
        print(
            f"{label}: {med[name]['seconds'] * 1000:8.1f} ms   peak above inputs {med[name]['extra_mb']:8.0f} MB   "
            f"loss {got[name][0]['loss']:.6f}",
            flush=True,
        )
    print(
        f"ratio ours/peer jsd: {med['ours']['seconds'] / med['peer']['seconds']:.2f}x time, "
        f"{med['ours']['extra_mb'] / max(med['peer']['extra_mb'], 1e-9):.2f}x memory above inputs",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
