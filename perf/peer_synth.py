"""Synthesis against the MOTAB release's scripts: rows per second, MOTAB, SKD and teacher-only.

    python perf/peer_synth.py --released-dir PATH [--problems 100 --runs 3 --methods motab skd teacher_only]

PATH is a local checkout of github.com/wangbing1416/MOTAB (this project ships none of its code); its
1-generate-ours.py, 2-generate-baseline.py and 3-generate-teacher-only.py are copied into a temporary
folder and run from there. Without --released-dir only our rows are measured (no ratio).
Same work on both sides: the toy teacher and student of the golden test (tests/golden_models.py:
random tiny Qwen3 models whose heads favour ".\\n\\n", digits and EOS), each served once by the
embedded server (`python -m motab serve`, --threads each), both sides sending to the same two servers;
the same --problems toy problems ({"id", "input", "answer"}), --num-responses each, greedy by default (so both
sides write the same rows: tests/test_synth_golden.py checks that in compat released), --max-step-tokens
and --max-total-tokens; epsilon0 0.2, theta 1.0, top-k entropy 20 (MOTAB), gamma 0.9 (SKD).
- peer: each script as a process with only its CLI arguments set and its own worker setting, the one in
  its release shell script (1-generate-ours-qwen32b-qwen4b.sh NUM_WORKERS 1, 2-generate-baseline-...sh
  64, 3-generate-teacher-only.sh 64; --released-workers METHOD=N overrides), --batch_size 10. MOTAB's
  and teacher-only's workers are spawned processes (each imports transformers and loads the tokenizer:
  64 of them take minutes on 2 cores), SKD's are concurrent questions in one asyncio process;
- ours: `python -m motab synth --method M --params-json {..., "compat": "released"} --server-url T
  --student-url S --max-in-flight --max-in-flight`.
Both are timed from process start to exit (imports and tokenizer loading included on both sides),
interleaved per run (method by method: ours, released). Printed: median seconds and rows/s per side
and method, and the ratio ours/peer of rows/s (above 1: ours is faster). Each side also runs on the
first problem alone (--startup-runs runs, interleaved likewise; an empty file would not do: the
scripts return before loading their tokenizer), which is mostly start-up (imports, tokenizer), and
the marginal rows/s, (rows - rows of one problem) / (seconds - seconds of one problem), shows the
synthesis loops without it: at toy sizes start-up is a large share of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"motab": "1-generate-ours.py", "skd": "2-generate-baseline.py", "teacher_only": "3-generate-teacher-only.py"}
RELEASE_WORKERS = {"motab": 1, "skd": 64, "teacher_only": 64}  # the release's shell scripts' NUM_WORKERS


def params(method: str, args: argparse.Namespace) -> dict:
    common = {
        "seed": 0,
        "num_responses": args.num_responses,
        "temperature": args.temperature,
        "compat": "released",
        "max_step_tokens": args.max_step_tokens,
        "max_total_tokens": args.max_total_tokens,
    }
    return (
        common
        | {
            "motab": {"epsilon0": 0.2, "theta": 1.0, "top_k_entropy": 20},
            "skd": {"gamma": 0.9},
            "teacher_only": {"stepwise": True},
        }[method]
    )


def ours_command(method: str, root: Path, urls: dict, args: argparse.Namespace, out: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "motab",
        "synth",
        "--method",
        method,
        "--problems",
        str(root / "problems.jsonl"),
        "--teacher",
        str(root / "models" / "teacher"),
        "--output",
        str(out),
        "--params-json",
        json.dumps(params(method, args)),
        "--server-url",
        urls["teacher"],
        "--max-in-flight",
        str(args.max_in_flight),
    ]
    if method != "teacher_only":
        cmd += ["--student", str(root / "models" / "student"), "--student-url", urls["student"]]
    return cmd


def released_workers(method: str, args: argparse.Namespace) -> int:
    """The script's --num_workers: --released-workers METHOD=N where given, else the release's own setting."""
    return dict(args.released_workers).get(method, RELEASE_WORKERS[method])


def worker_setting(text: str) -> tuple[str, int]:
    method, _, n = text.partition("=")
    if method not in SCRIPTS or not n.isdigit() or int(n) < 1:
        raise argparse.ArgumentTypeError(f"expected METHOD=N with METHOD one of {', '.join(SCRIPTS)}, found {text!r}")
    return method, int(n)


def released_command(method: str, root: Path, urls: dict, args: argparse.Namespace, out: Path) -> list[str]:
    workers = released_workers(method, args)
    cmd = [
        sys.executable,
        str(root / "released" / SCRIPTS[method]),
        "--input_file",
        str(root / "problems.jsonl"),
        "--output_file",
        str(out),
        "--teacher_url",
        urls["teacher"] + "/generate",
        "--teacher_model_path",
        str(root / "models" / "teacher"),
        "--num_responses",
        str(args.num_responses),
        "--temperature",
        str(args.temperature),
        "--max_step_tokens",
        str(args.max_step_tokens),
        "--max_total_tokens",
        str(args.max_total_tokens),
        "--num_workers",
        str(workers),
        "--batch_size",
        "10",
    ]
    if method != "teacher_only":
        cmd += ["--student_url", urls["student"] + "/generate"]
    return cmd + (
        ["--epsilon0", "0.2", "--theta", "1.0", "--top_k_entropy", "20"]
        if method == "motab"
        else ["--gamma", "0.9"]
        if method == "skd"
        else []
    )


def timed(cmd: list[str], out: Path, env: dict, timeout_s: float) -> tuple[float, int]:
    """(seconds, rows written) of one run; on timeout the run's whole process group is killed (the
    release's spawned workers outlive a killed parent otherwise)."""
    from motab.serving.launch import stop_process_group

    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_process_group(proc, grace_s=2.0)
        sys.exit(f"timed out after {timeout_s:.0f} s (--timeout-s): {' '.join(cmd)}")
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{stdout[-2000:]}\n{stderr[-3000:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return seconds, sum(len(r["responses"]) if "responses" in r else 1 for r in rows)


def startup(sides, methods, root: Path, urls: dict, args, env: dict) -> dict[tuple[str, str], tuple[float, int]]:
    """Median (seconds, rows) of each side's run on the first problem alone: mostly start-up."""
    from motab.jsonio import read_jsonl, write_jsonl

    write_jsonl(root / "one.jsonl", read_jsonl(root / "problems.jsonl")[:1])
    got: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for run in range(args.startup_runs):
        for method in methods:
            for side, command in sides:
                out = root / f"one-{side}-{method}-{run}.jsonl"
                cmd = [
                    str(root / "one.jsonl") if part == str(root / "problems.jsonl") else part
                    for part in command(method, root, urls, args, out)
                ]
                got.setdefault((side, method), []).append(timed(cmd, out, env, args.timeout_s))
    return {key: (statistics.median(s for s, _ in runs), runs[0][1]) for key, runs in got.items()}


def report(sides, methods, got: dict, start: dict, args) -> None:
    """Per method: each side's median seconds, rows/s and start-up, and the ratios ours/peer."""
    for method in methods:
        rate, loop = {}, {}
        for side, _ in sides:
            runs = got[(side, method)]
            seconds = statistics.median(s for s, _ in runs)
            rate[side] = statistics.median(n / s for s, n in runs)
            label = (
                f"ours motab synth {method}"
                if side == "ours"
                else f"peer released {SCRIPTS[method]} (workers {released_workers(method, args)})"
            )
            extra = ""
            if (side, method) in start:
                one_s, one_n = start[(side, method)]
                loop[side] = statistics.median((n - one_n) / max(s - one_s, 1e-9) for s, n in runs)
                extra = f"  one problem {one_s:5.2f} s, marginal {loop[side]:7.2f} rows/s"
            print(f"{label}: {seconds:7.2f} s  {rate[side]:7.2f} rows/s  (rows {runs[0][1]}){extra}", flush=True)
        if "peer" in rate:
            past = f", {loop['ours'] / loop['peer']:.2f}x marginal" if len(loop) == 2 else ""
            print(f"ratio ours/peer {method}: {rate['ours'] / rate['peer']:.2f}x rows/s{past}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--released-dir", help="local checkout of github.com/wangbing1416/MOTAB (none: ours only)")
    p.add_argument("--problems", type=int, default=100)
    p.add_argument("--num-responses", type=int, default=1)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-step-tokens", type=int, default=24)
    p.add_argument("--max-total-tokens", type=int, default=64)
    p.add_argument("--max-in-flight", type=int, default=4, help="ours: requests in flight per server")
    p.add_argument(
        "--released-workers",
        type=worker_setting,
        nargs="*",
        default=[],
        metavar="METHOD=N",
        help=f"override a script's worker setting (default: the release's own, {RELEASE_WORKERS})",
    )
    p.add_argument("--methods", nargs="+", default=list(SCRIPTS), choices=list(SCRIPTS))
    p.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--startup-runs", type=int, default=1, help="runs on the first problem alone per side (0: none)")
    p.add_argument("--timeout-s", type=float, default=900.0, help="per synthesis run (its process group is killed)")
    args = p.parse_args(argv)
    released = Path(args.released_dir) if args.released_dir else None
    if released is not None:
        missing = [name for name in SCRIPTS.values() if not (released / name).is_file()]
        if missing:
            p.error(f"--released-dir {released}: not a MOTAB release checkout (missing {', '.join(missing)})")
    sys.path.insert(0, str(REPO / "tests"))
    import golden_models

    from motab.jsonio import write_jsonl
    from motab.serving.launch import LOCAL_SERVER, serving

    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        golden_models.build_pair(root / "models")
        # {"id", "input"} as the release reads them, plus the "answer" ours needs (the scripts ignore it)
        write_jsonl(root / "problems.jsonl", golden_models.problems(args.problems))
        if released is not None:  # run copies, never the checkout itself
            (root / "released").mkdir()
            for name in SCRIPTS.values():
                shutil.copy(released / name, root / "released" / name)
        server = LOCAL_SERVER + f" --threads {args.threads}"
        with (
            serving(server, str(root / "models" / "teacher"), root / "t.log") as turl,
            serving(server, str(root / "models" / "student"), root / "s.log") as surl,
        ):
            urls = {"teacher": turl, "student": surl}
            print(
                f"synthesis: {args.problems} toy problems x {args.num_responses} responses, temperature "
                f"{args.temperature}, steps <= {args.max_step_tokens} / total <= {args.max_total_tokens} tokens, "
                f"golden toy teacher and student on embedded servers ({args.threads} thread(s) each); ours "
                f"--max-in-flight {args.max_in_flight}; median of {args.runs} interleaved runs; load average "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )
            sides = [("ours", ours_command)] + ([("peer", released_command)] if released is not None else [])
            start = startup(sides, args.methods, root, urls, args, env)
            got: dict[tuple[str, str], list[tuple[float, int]]] = {}
            for run in range(args.runs):
                for method in args.methods:
                    for side, command in sides:
                        out = root / f"{side}-{method}-{run}.jsonl"
                        got.setdefault((side, method), []).append(
                            timed(command(method, root, urls, args, out), out, env, args.timeout_s)
                        )
        report(sides, args.methods, got, start, args)
        if released is None:
            print("released scripts: not measured (no --released-dir given), so no ratio", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
