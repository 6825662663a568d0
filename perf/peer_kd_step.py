"""KD training step against TRL's GKDTrainer: step time and peak memory, ours (kd-train jsd / fkl) vs GKD.

    python perf/peer_kd_step.py [--prompts 4 --samples 2 --new-tokens 32 --steps 3 --runs 3
                                       --hidden 128 --layers 4 --device cpu|cuda]

Same work on both sides: a random Qwen3-architecture student and teacher (the toy tokenizer, vocab 300,
as tests/conftest.py builds them; --hidden x --layers), the same prompt batch (--prompts toy problems,
--samples rollouts each: GKD's dataset repeats each prompt --samples times, one batch of prompts x
samples rows), fully on-policy (GKD lmbda=1, seq_kd off), sampling at temperature 1 to at most
--new-tokens tokens (a random student seldom samples eos, so both sides train on about that many),
then the loss over the response tokens, backward and one AdamW step (lr 1e-4, constant).
- ours: `motab kd-train --loss jsd|fkl` (motab.training.kd.command.main in-process: rollouts, teacher and
  student hidden states, the divergence over the vocabulary in token chunks from the lm_head);
- peer: trl.GKDTrainer.train (its training_step: generate_on_policy_outputs, then compute_loss with
  generalized_jsd_loss over full logits) with beta 0.5 for jsd and 0 for fkl (both: the teacher's
  weight in the mixture, as our --jsd-beta).
Each (side, loss, run) is a fresh process, interleaved run by run (ours jsd, GKD jsd, ours fkl, GKD fkl,
...). Step seconds: the median of each process's steps after the first (warm-up), then the median
over runs; peak memory: the process's peak RSS on CPU, torch.cuda.max_memory_allocated on CUDA.
Printed: medians per side and loss, and the ratio ours/peer of step time and of peak memory (below 1:
ours is faster / smaller).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tiny_models import build_tiny_models, write_prompts

REPO = Path(__file__).resolve().parents[1]
BETAS = {"jsd": 0.5, "fkl": 0.0}


def build(root: Path, prompts: int, hidden: int, layers: int) -> None:
    """Tokenizer, student (seed 0), teacher (seed 1) and the prompt file under root."""
    rows = build_tiny_models(root, {"student": 0, "teacher": 1}, hidden, layers, texts=max(prompts, 300))
    write_prompts(root / "prompts.jsonl", rows[:prompts])


def peak_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(root: Path, cfg: dict) -> list[float]:
    from motab.training.kd import command as kd_command

    log = root / f"ours-{os.getpid()}.csv"
    kd_command.main(
        [
            "--student",
            str(root / "student"),
            "--teacher",
            str(root / "teacher"),
            "--prompts",
            str(root / "prompts.jsonl"),
            "--loss",
            cfg["loss"],
            "--jsd-beta",
            str(BETAS["jsd"]),
            "--steps",
            str(cfg["steps"]),
            "--prompts-per-step",
            str(cfg["prompts"]),
            "--samples-per-prompt",
            str(cfg["samples"]),
            "--max-new-tokens",
            str(cfg["new_tokens"]),
            "--temperature",
            "1.0",
            "--lr",
            "1e-4",
            "--seed",
            "0",
            "--threads",
            str(cfg["threads"]),
            "--output",
            str(root / f"ours-{os.getpid()}"),
            "--log-csv",
            str(log),
        ]
    )
    return [float(line.split(",")[4]) for line in log.read_text().splitlines()[1:]]


def run_trl(root: Path, cfg: dict) -> list[float]:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GKDConfig, GKDTrainer

    from motab.jsonio import read_jsonl

    torch.set_num_threads(cfg["threads"])
    tok = AutoTokenizer.from_pretrained(root / "student")
    # the collator splits each conversation into prompt and completion; on-policy replaces the completion
    rows = [
        {"messages": [*r["messages"], {"role": "assistant", "content": "0"}]}
        for r in read_jsonl(root / "prompts.jsonl")
        for _ in range(cfg["samples"])
    ]
    args = GKDConfig(
        output_dir=str(root / f"trl-{os.getpid()}"),
        max_steps=cfg["steps"],
        per_device_train_batch_size=len(rows),
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        lmbda=1.0,
        beta=BETAS[cfg["loss"]],
        temperature=1.0,
        max_new_tokens=cfg["new_tokens"],
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        seed=0,
        weight_decay=0.0,
        use_cpu=cfg["device"] == "cpu",
        dataloader_num_workers=0,
        bf16=False,
    )
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            if cfg["device"] == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.start)

    trainer = GKDTrainer(
        model=AutoModelForCausalLM.from_pretrained(root / "student"),
        teacher_model=AutoModelForCausalLM.from_pretrained(root / "teacher"),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        callbacks=[StepTimer()],
    )
    trainer.train()
    return times


def child(root: Path, cfg: dict) -> None:
    times = run_ours(root, cfg) if cfg["side"] == "ours" else run_trl(root, cfg)
    import torch

    print(json.dumps({"peak_mb": peak_mb(cfg["device"]), "steps": times, "threads": torch.get_num_threads()}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="steps per process (the first is warm-up)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--losses", nargs="+", default=["jsd", "fkl"], choices=tuple(BETAS))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--timeout-s", type=float, default=1800.0, help="per fresh process")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), json.loads(args.child[1]))
        return 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRL_EXPERIMENTAL_SILENCE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # kd-train takes CUDA by itself when it sees one
    else:
        import torch

        if not torch.cuda.is_available():
            print("skipped: --device cuda but torch sees no CUDA device")
            return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.prompts, args.hidden, args.layers)
        print(
            f"KD step on {args.device}: {args.prompts} prompts x {args.samples} rollouts x <= {args.new_tokens} "
            f"new tokens, student and teacher hidden {args.hidden} x {args.layers} layers (vocab 300), "
            f"{args.threads} threads; {args.steps} steps a process (first dropped); median of {args.runs} "
            f"fresh processes, interleaved; load average {os.getloadavg()[0]:.1f}"
        )
        got: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.runs):
            for loss in args.losses:
                for side in ("ours", "peer"):
                    cfg = {
                        "side": side,
                        "loss": loss,
                        "steps": args.steps,
                        "prompts": args.prompts,
                        "samples": args.samples,
                        "new_tokens": args.new_tokens,
                        "threads": args.threads,
                        "device": args.device,
                    }
                    done = subprocess.run(
                        [sys.executable, __file__, "--child", str(root), json.dumps(cfg)],
                        capture_output=True,
                        text=True,
                        env=env,
                        timeout=args.timeout_s,
                        check=False,
                    )
                    if done.returncode:
                        sys.exit(f"{side} {loss} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                    got.setdefault((side, loss), []).append(json.loads(done.stdout.strip().splitlines()[-1]))
        for loss in args.losses:
            med = {}
            for side in ("ours", "peer"):
                runs = got[(side, loss)]
                step = statistics.median(statistics.median(r["steps"][1:] or r["steps"]) for r in runs)
                mem = statistics.median(r["peak_mb"] for r in runs)
                med[side] = (step, mem)
                label = "ours kd-train" if side == "ours" else "peer TRL GKD"
                print(
                    f"{label} {loss}: step {step:7.3f} s   peak {'RSS' if args.device == 'cpu' else 'CUDA'} "
                    f"{mem:8.0f} MB   torch threads {runs[0]['threads']}",
                    flush=True,
                )
            print(
                f"ratio ours/peer {loss}: {med['ours'][0] / med['peer'][0]:.2f}x step time, "
                f"{med['ours'][1] / med['peer'][1]:.2f}x peak memory",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
