"""Peak memory and time of chunked vs naive forward-KL, forward + backward (CPU fp32 by default).

    python perf/kd_loss.py [--tokens 2048 --vocab 151936 --hidden 1024 --chunk-tokens 256 --runs 3]
    python perf/kd_loss.py --variants naive,fused --chunk-tokens 64,128,256,512   # a chunk-size sweep
    python perf/kd_loss.py --device cuda --dtype bfloat16      # on a GPU

Each (variant, run) is a fresh subprocess, so its peak memory is its own. CPU: the peak resident
set size (resource.getrusage ru_maxrss; torch's CPU allocator keeps no peak statistics and
tracemalloc does not see torch's buffers). CUDA: torch.cuda.max_memory_allocated, after one
untimed warm-up call (kernel start-up) and a reset of the peak; "baseline" is then the memory
allocated once the inputs exist, and times are taken after torch.cuda.synchronize(). The child builds the
inputs the trainer has: student hidden states [tokens, hidden] with grad, a student head
Linear(hidden, vocab) with grad, teacher hidden states and a frozen teacher head (KDFlow's form;
with --teacher-head shared the teacher scores with the student's head, as in self-distillation
(OPSD / PW-OPSD: the teacher is the student, LoRA leaves lm_head alone), no second head);
it records ru_maxrss once the inputs exist ("baseline"), then times one forward + backward of
the mean fkl and records ru_maxrss again. Printed: medians over the runs of the wall time, the
CPU time of the process (user + system; less sensitive than wall time to other work on a shared
machine), the peak RSS, and the peak above the baseline (the loss's own memory), with chunked /
naive ratios. Runs are interleaved (naive, fused, ..., then the next run), so a change in the
machine's load falls on every row alike; quote `uptime` with the figures.
Reading the peaks: the inputs (two 151,936 x 1,024 float32 heads, 1.2 GB, plus torch itself, about
0.5 GB RSS) and the student head's gradient (0.6 GB, which any method must produce) are in every
variant's whole-process peak, so with a separate teacher head a chunked variant's peak stays above
about 2.3 GB at these shapes however small its chunks; the "above inputs" figure is the loss's own
memory. Measured on 2 idle cores (load 0.8-1.9), median of 3, naive 26-28 s wall; ratios against the
naive row of the same invocation (three invocations: shared 256, separate 256, separate 64,128):
  teacher head  chunk  peak MB (naive)   peak lower  above inputs lower  wall time  CPU time
  shared          256   2,203 (9,447)       4.29x          7.70x           x0.81     x0.88
  separate        256   2,797 (10,041)      3.59x          7.70x           x0.83     x0.89
  separate        128   2,574 (10,041)      3.90x          9.70x           x0.83     x0.91
  separate         64   2,463 (10,041)      4.08x         11.14x           x1.10     x1.19
Variants: naive (full [tokens, vocab] logits of both models, motab.losses.divergences.
token_divergence, .mean(), backward: what a user writes), fused (chunked_token_divergence, default
backend: gradients of each chunk are computed in forward, in closed form for fkl), checkpoint (chunked_token_divergence with fused=False: torch.utils.checkpoint
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    import torch

    from motab.losses.divergences import chunked_token_divergence, token_divergence

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cuda = device.type == "cuda"
    student_hidden = torch.randn(args.tokens, args.hidden, device=device, dtype=dtype).requires_grad_(True)
    teacher_hidden = torch.randn(args.tokens, args.hidden, device=device, dtype=dtype)
    student_head = torch.nn.Linear(args.hidden, args.vocab, bias=False, device=device, dtype=dtype)
    teacher_head = (
        student_head
        if args.teacher_head == "shared"
        else torch.nn.Linear(args.hidden, args.vocab, bias=False, device=device, dtype=dtype).requires_grad_(False)
    )
    mask = torch.ones(args.tokens, dtype=torch.bool, device=device)

    def step() -> torch.Tensor:
        if args.child == "naive":
            with torch.no_grad():
                teacher_logits = teacher_head(teacher_hidden)
            loss = token_divergence(student_head(student_hidden), teacher_logits, "fkl").mean()
        else:
            loss = chunked_token_divergence(
                student_hidden,
                student_head,
                teacher_hidden,
                mask,
                "fkl",
                teacher_head=teacher_head,
                chunk_tokens=int(args.chunk_tokens),
                fused=args.child == "fused",
            )
        loss.backward()
        return loss

    if cuda:
        step()  # warm-up: CUDA context, kernels, cuBLAS workspace
        student_hidden.grad = student_head.weight.grad = None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated() / 2**20
    else:
        baseline = rss_mb()
    start, start_cpu = time.perf_counter(), cpu_seconds()
    loss = step()
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else rss_mb()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "peak_mb": peak,
                "baseline_mb": baseline,
                "loss": loss.item(),
                "grad_norm": student_head.weight.grad.float().norm().item(),
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--chunk-tokens", default="256", help="tokens per chunk; a comma list measures each")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument(
        "--teacher-head",
        default="separate",
        choices=("separate", "shared"),
        help="shared: the teacher scores with the student's own head (self-distillation)",
    )
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    memory = "peak RSS" if args.device == "cpu" else "peak CUDA allocated"
    print(
        f"fkl forward+backward, {args.dtype} on {args.device} ({memory}), tokens={args.tokens} vocab={args.vocab} "
        f"hidden={args.hidden} threads={args.threads} teacher head {args.teacher_head}, median of {args.runs} fresh "
        f"processes per row, rows interleaved run by run"
    )
    rows = [
        (v, 0) if v == "naive" else (v, int(c))
        for v in args.variants.split(",")
        for c in (["0"] if v == "naive" else args.chunk_tokens.split(","))
    ]
    runs: dict[tuple[str, int], list[dict]] = {row: [] for row in rows}
    for _ in range(args.runs):  # interleaved, so a change in the machine's load hits every row alike
        for variant, chunk in rows:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                variant,
                "--tokens",
                str(args.tokens),
                "--vocab",
                str(args.vocab),
                "--hidden",
                str(args.hidden),
                "--chunk-tokens",
                str(chunk or 1),
                "--threads",
                str(args.threads),
                "--device",
                args.device,
                "--dtype",
                args.dtype,
                "--teacher-head",
                args.teacher_head,
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[(variant, chunk)].append(json.loads(out.strip().splitlines()[-1]))
    results = {}
    for (variant, chunk), got in runs.items():
        med = {k: statistics.median(r[k] for r in got) for k in ("seconds", "cpu_seconds", "peak_mb", "baseline_mb")}
        med["extra_mb"] = statistics.median(r["peak_mb"] - r["baseline_mb"] for r in got)
        name = variant if variant == "naive" else f"{variant}@{chunk}"
        results[name] = med
        print(
            f"{name:>16}: time {med['seconds']:7.2f} s (cpu {med['cpu_seconds']:7.2f} s)   peak {med['peak_mb']:6.0f} MB"
            f"   above inputs {med['extra_mb']:6.0f} MB   (loss {got[0]['loss']:.6f}, |grad W| "
            f"{got[0]['grad_norm']:.6f})",
            flush=True,
        )
    if "naive" in results:
        base = results["naive"]
        for name, med in results.items():
            if name != "naive":
                print(
                    f"{name} / naive: time {ratio(med['seconds'], base['seconds'])} (cpu "
                    f"{ratio(med['cpu_seconds'], base['cpu_seconds'])}), peak "
                    f"{ratio(base['peak_mb'], med['peak_mb'])} lower, memory above inputs "
                    f"{ratio(base['extra_mb'], med['extra_mb'])} lower"
                )


def ratio(a: float, b: float) -> str:
    """a / b as "x1.23", or "x-" where b is 0 (a time below the clock's resolution at tiny sizes)."""
    return f"x{a / b:.2f}" if b > 0 else "x-"


if __name__ == "__main__":
    main()
