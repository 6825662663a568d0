"""Peak memory and time of chunked vs naive forward-KL, forward + backward, on CPU (fp32).

    python benchmarks/kd_loss.py [--tokens 2048 --vocab 151936 --hidden 1024 --chunk-tokens 256 --runs 3]

Each (variant, run) is a fresh subprocess, so its peak resident set size (resource.getrusage
ru_maxrss; torch's CPU allocator keeps no peak statistics) is its own. The child builds the
inputs the trainer has: student hidden states [tokens, hidden] with grad, a student head
Linear(hidden, vocab) with grad, teacher hidden states and a frozen teacher head (KDFlow's form);
it records ru_maxrss once the inputs exist ("baseline"), then times one forward + backward of
the mean fkl and records ru_maxrss again. Printed: medians over the runs of the time, the peak
RSS, and the peak above the baseline (the loss's own memory), with chunked / naive ratios.
Variants: naive (full [tokens, vocab] logits of both models, motab.losses.divergences.
token_divergence), fused (chunked_token_divergence, default backend: gradients of each chunk are
computed in forward), checkpoint (chunked_token_divergence with fused=False: torch.utils.checkpoint
recomputes each chunk in backward).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("naive", "fused", "checkpoint")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: kilobytes


def child(args: argparse.Namespace) -> None:
    import torch

    from motab.losses.divergences import chunked_token_divergence, token_divergence

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    student_hidden = torch.randn(args.tokens, args.hidden).requires_grad_(True)
    teacher_hidden = torch.randn(args.tokens, args.hidden)
    student_head = torch.nn.Linear(args.hidden, args.vocab, bias=False)
    teacher_head = torch.nn.Linear(args.hidden, args.vocab, bias=False).requires_grad_(False)
    mask = torch.ones(args.tokens, dtype=torch.bool)
    baseline = rss_mb()
    start = time.perf_counter()
    if args.child == "naive":
        with torch.no_grad():
            teacher_logits = teacher_head(teacher_hidden)
        loss = token_divergence(student_head(student_hidden), teacher_logits, "fkl").mean()
    else:
        loss = chunked_token_divergence(student_hidden, student_head, teacher_hidden, mask, "fkl",
                                        teacher_head=teacher_head, chunk_tokens=args.chunk_tokens,
                                        fused=args.child == "fused")
    loss.backward()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": rss_mb(), "baseline_mb": baseline, "loss": loss.item(),
                      "grad_norm": student_head.weight.grad.norm().item()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--chunk-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(f"fkl forward+backward, fp32 CPU, tokens={args.tokens} vocab={args.vocab} hidden={args.hidden} "
          f"chunk_tokens={args.chunk_tokens} threads={args.threads}, median of {args.runs} fresh processes")
    results = {}
    for variant in args.variants.split(","):
        runs = []
        for _ in range(args.runs):
            cmd = [sys.executable, __file__, "--child", variant, "--tokens", str(args.tokens), "--vocab",
                   str(args.vocab), "--hidden", str(args.hidden), "--chunk-tokens", str(args.chunk_tokens),
                   "--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "peak_mb", "baseline_mb")}
        med["extra_mb"] = statistics.median(r["peak_mb"] - r["baseline_mb"] for r in runs)
        med["loss"], med["grad_norm"] = runs[0]["loss"], runs[0]["grad_norm"]
        results[variant] = med
        print(f"{variant:>10}: time {med['seconds']:7.2f} s   peak RSS {med['peak_mb']:8.0f} MB   "
              f"above inputs {med['extra_mb']:8.0f} MB   (loss {med['loss']:.6f}, |grad W| {med['grad_norm']:.6f})",
              flush=True)
    if "naive" in results:
        base = results["naive"]
        for variant, med in results.items():
            if variant != "naive":
                print(f"{variant} / naive: time x{med['seconds'] / base['seconds']:.2f}, peak RSS "
                      f"{base['peak_mb'] / med['peak_mb']:.2f}x lower, memory above inputs "
                      f"{base['extra_mb'] / med['extra_mb']:.2f}x lower")


if __name__ == "__main__":
    main()
