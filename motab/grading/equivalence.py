"""Answer equivalence with math-verify, and batch grading with a hard per-answer timeout.

`is_equivalent(pred, gold)` is the pure comparison (no timeout of its own: call it through
`grade_many` / `equivalent_many` when answers are untrusted). The batch functions run each
comparison in a worker process under two limits:

- a soft limit inside the worker: an interval timer (SIGALRM; workers run comparisons on their
  main thread, so signals work) raises an exception that math-verify does not catch, and the
  answer is scored "timeout" with the worker kept;
- a hard limit in the parent (soft limit + grace): a worker stuck in C code, where Python
  signals are not delivered (e.g. a huge integer power), is killed and replaced, and the
  answer is scored "timeout".

math-verify's own signal-based timeouts are switched off in workers (they would replace our timer).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait

REASONS = ("correct", "wrong", "no_answer", "timeout", "error")
HARD_GRACE_S = 1.0  # parent kills a worker this long after its soft limit

_NUM_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_WRAPPERS = ("\\boxed{", "\\fbox{")


@dataclass(frozen=True)
class Grade:
    """One graded answer: the extracted prediction, whether it is correct, and why."""

    pred: str | None
    correct: bool
    reason: str  # one of REASONS


class _SoftTimeout(BaseException):
    """Raised by the worker's timer; a BaseException so math-verify's `except Exception` lets it through."""


def _normalize(text: str) -> str:
    return " ".join(str(text).split())


def _fast_number(text: str) -> str | None:
    """Canonical form of a plain decimal number ("025" -> "25", "10.0" -> "10", "-0" -> "0"), else None.

    Pure string work, so numbers of any length (Python's int() refuses strings of 4,301+ digits)
    compare in linear time.
    """
    t = text.strip().replace("{,}", "").replace("\\!", "")
    if t.startswith("$") and t.endswith("$") and len(t) >= 2:
        t = t[1:-1].strip()
    if not _NUM_RE.fullmatch(t):
        return None
    sign = "-" if t[0] == "-" else ""
    t = t.lstrip("+-")
    whole, _, frac = t.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    if whole == "0" and not frac:
        sign = ""
    return sign + whole + ("." + frac if frac else "")


def _as_latex(answer: str) -> str:
    """Wrap a bare answer as math-verify expects: a boxed LaTeX expression (kept as is if already boxed)."""
    a = answer.strip()
    if a.startswith("$") and a.endswith("$") and len(a) >= 2:
        a = a.strip("$").strip()
    if any(a.startswith(w) for w in _WRAPPERS):
        return f"${a}$"
    return f"$\\boxed{{{a}}}$"


def _parse(answer: str):
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    parsed = parse(
        _as_latex(answer),
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
        parsing_timeout=None,
    )
    if not parsed:  # plain-text expressions such as "1/2" or "x+1"
        parsed = parse(
            answer, extraction_config=[ExprExtractionConfig(), LatexExtractionConfig()], parsing_timeout=None
        )
    return parsed


def math_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict alone (no string or number shortcuts): parse both, then verify(gold, pred)."""
    from math_verify import verify

    gold_parsed = _parse(gold)
    pred_parsed = _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def is_equivalent(pred: str | None, gold: str | None) -> bool:
    """True when the predicted answer equals the gold answer mathematically.

    Identical strings (up to whitespace) and plain numbers ("025" == "25", "10" == "10.0") are
    decided without sympy; everything else goes through math-verify. No timeout here: untrusted
    answers should go through `grade_many`.
    """
    if pred is None or gold is None:
        return False
    pred, gold = str(pred), str(gold)
    if not pred.strip() or not gold.strip():
        return False
    verdict = _shortcut(pred, gold)
    return verdict if verdict is not None else math_equal(pred, gold)


def pwopsd_equal(pred: str, gold: str) -> bool:
    """PW-OPSD's eval/evaluate_math.py grade_answer: each side wrapped in $...$ unless it holds a $,
    parse(no_fallback), verify(gold, pred); if math-verify raises, compare the strings with $ and
    spaces removed, lower-cased. Identical strings are NOT equal when math-verify parses neither."""
    from math_verify import parse, verify

    p = pred if "$" in pred else f"${pred}$"
    g = gold if "$" in gold else f"${gold}$"
    try:
        return bool(
            verify(
                parse(g, fallback_mode="no_fallback", parsing_timeout=None),
                parse(p, fallback_mode="no_fallback", parsing_timeout=None),
                timeout_seconds=None,
            )
        )
    except Exception:  # noqa: BLE001 - the release's own fallback

        def norm(s: str) -> str:
            return s.replace("$", "").replace(" ", "").lower().strip()

        return norm(p) == norm(g)


def cis5300_equal(pred: str, gold: str) -> bool:
    """The CoT-filter seed's score.py: verify(parse(gold), parse(pred)) on the raw strings; if
    math-verify raises, stripped lower-cased string equality."""
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold, parsing_timeout=None), parse(pred, parsing_timeout=None), timeout_seconds=None))
    except Exception:  # noqa: BLE001 - the seed's own fallback
        return gold.strip().lower() == pred.strip().lower()


# equivalence name -> (comparison, whether identical strings are equal without asking math-verify)
EQUIVALENCES = {"motab": (is_equivalent, True), "pwopsd": (pwopsd_equal, False), "cis5300": (cis5300_equal, False)}


def check_equivalence(name: str) -> str:
    if name not in EQUIVALENCES:
        raise ValueError(f"unknown equivalence {name!r}; known: {', '.join(EQUIVALENCES)}")
    return name


# ----------------------------------------------------------------------------------------------
# worker pool


def _silence_math_verify() -> None:
    # math-verify warns once that its own timeout is off; we enforce ours
    for name in ("math_verify", "math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _judge(pred: str, gold: str, timeout_s: float, equivalence: str = "motab") -> tuple[bool, str]:
    """(correct, reason) for one comparison under the soft timer; runs on a main thread."""
    use_timer = timeout_s > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if use_timer:

        def on_alarm(signum, frame):
            raise _SoftTimeout()

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        try:
            verdict = _shortcut(pred, gold, equivalence)
            ok = verdict if verdict is not None else EQUIVALENCES[equivalence][0](pred, gold)
        finally:
            if use_timer:
                signal.setitimer(signal.ITIMER_REAL, 0)
        return ok, ("correct" if ok else "wrong")
    except _SoftTimeout:
        return False, "timeout"
    except Exception:  # noqa: BLE001 - any failure inside sympy scores the answer incorrect
        return False, "error"
    finally:
        if use_timer:
            signal.signal(signal.SIGALRM, old)


def _worker_loop(conn) -> None:
    _silence_math_verify()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    try:
        import math_verify  # noqa: F401  - import before the first timed task

        while True:
            try:
                task = conn.recv()
            except EOFError:
                return
            if task is None:
                return
            conn.send(_judge(*task))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return


class _Worker:
    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_loop, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task: int | None = None
        self.deadline = 0.0

    def submit(self, index: int, pred: str, gold: str, timeout_s: float, equivalence: str) -> None:
        self.task = index
        self.deadline = time.monotonic() + timeout_s + HARD_GRACE_S if timeout_s > 0 else float("inf")
        self.conn.send((pred, gold, timeout_s, equivalence))

    def kill(self) -> None:
        try:
            self.process.kill()
        except (OSError, AttributeError):
            pass
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods and os.name == "posix" else "spawn")


def _judge_pairs(
    pairs: Sequence[tuple[str, str]], processes: int, timeout_s: float, equivalence: str
) -> list[tuple[bool, str]]:
    """(correct, reason) for each (pred, gold) pair with both strings present, in worker processes."""
    results: list[tuple[bool, str] | None] = [None] * len(pairs)
    if not pairs:
        return []
    ctx = _context()
    if ctx.get_start_method() == "fork":
        import math_verify  # noqa: F401  - imported once here, inherited by every forked worker

    n_workers = max(1, min(int(processes), len(pairs)))
    workers = [_Worker(ctx) for _ in range(n_workers)]
    queue = iter(range(len(pairs)))

    def feed(worker: _Worker) -> None:
        index = next(queue, None)
        worker.task = None
        if index is not None:
            worker.submit(index, pairs[index][0], pairs[index][1], timeout_s, equivalence)

    try:
        for worker in workers:
            feed(worker)
        while any(w.task is not None for w in workers):
            busy = [w for w in workers if w.task is not None]
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for w in busy) - now)
            ready = wait([w.conn for w in busy], timeout=None if wait_s == float("inf") else wait_s)
            for worker in busy:
                if worker.conn in ready:
                    try:
                        results[worker.task] = worker.conn.recv()
                    except (EOFError, OSError):  # worker died (e.g. out of memory): score as error
                        results[worker.task] = (False, "error")
                        workers[workers.index(worker)] = worker = _replace(worker, ctx)
                    feed(worker)
                elif time.monotonic() >= worker.deadline:
                    results[worker.task] = (False, "timeout")
                    workers[workers.index(worker)] = worker = _replace(worker, ctx)
                    feed(worker)
    finally:
        for worker in workers:
            if worker.task is not None:
                worker.kill()
            else:
                worker.stop()
    return [r if r is not None else (False, "error") for r in results]


def _replace(worker: _Worker, ctx) -> _Worker:
    worker.kill()
    return _Worker(ctx)


def _shortcut(pred: str, gold: str, equivalence: str = "motab") -> bool | None:
    """Verdict without sympy where one is certain, else None. Plain numbers compare as numbers under
    every equivalence (math-verify agrees); identical strings only where the equivalence says so."""
    if EQUIVALENCES[equivalence][1] and _normalize(pred) == _normalize(gold):
        return True
    pn, gn = _fast_number(pred), _fast_number(gold)
    if pn is not None and gn is not None:
        return pn == gn
    return None


def judge_many(
    pairs: Iterable[tuple[str | None, str | None]],
    processes: int = 1,
    timeout_s: float = 5.0,
    equivalence: str = "motab",
) -> list[tuple[bool, str]]:
    """(equivalent, reason) for each (pred, gold) string pair; reasons as in `Grade`.

    Duplicate pairs are judged once; trivially decided pairs never reach a worker.
    processes <= 0 judges in this process (soft timer only, and only on the main thread: a hang in
    C code cannot be interrupted there). `equivalence` names the comparison (EQUIVALENCES).
    """
    check_equivalence(equivalence)
    pairs = list(pairs)
    out: list[tuple[bool, str] | None] = [None] * len(pairs)
    todo: dict[tuple[str, str], list[int]] = {}
    for i, (pred, gold) in enumerate(pairs):
        if pred is None or not str(pred).strip():
            out[i] = (False, "no_answer")
        elif gold is None or not str(gold).strip():
            out[i] = (False, "error")
        else:
            verdict = _shortcut(str(pred), str(gold), equivalence)
            if verdict is not None:
                out[i] = (verdict, "correct" if verdict else "wrong")
            else:
                todo.setdefault((str(pred), str(gold)), []).append(i)
    keys = sorted(todo)  # fixed order: results do not depend on input order
    if processes <= 0:
        _silence_math_verify()
        verdicts = [_judge(p, g, timeout_s, equivalence) for p, g in keys]
    else:
        verdicts = _judge_pairs(keys, processes, timeout_s, equivalence)
    for key, verdict in zip(keys, verdicts):
        for i in todo[key]:
            out[i] = verdict
    return [v for v in out if v is not None]


def grade_many(
    pairs: Iterable[tuple[str | None, str]], processes: int = 1, timeout_s: float = 5.0, equivalence: str = "motab"
) -> list[Grade]:
    """Grade (pred, gold) pairs, where pred is an extracted answer or None; one Grade per pair, in order.

    Each comparison costs at most `timeout_s` (+ HARD_GRACE_S when a worker must be killed) and is
    then scored incorrect with reason "timeout". processes=1 uses one worker process, so even a
    hang in C code is bounded; processes=0 judges in-process with the soft timer only.
    """
    pairs = list(pairs)
    verdicts = judge_many(pairs, processes=processes, timeout_s=timeout_s, equivalence=equivalence)
    return [Grade(pred=p, correct=ok, reason=reason) for (p, _), (ok, reason) in zip(pairs, verdicts)]
