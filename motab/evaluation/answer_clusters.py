"""Maj@k's answer clusters for a whole responses file, judged in parallel: each answer is compared
only with the representatives of the clusters before it, every verdict is cached for the file, and
the comparisons of one round go to the grading worker pool together (METHODS.md, "Grading that
always answers")."""

from __future__ import annotations

from collections.abc import Sequence

from motab.evaluation.metrics import majority_vote
from motab.grading.equivalence import EQUIVALENCES, judge_many


def _place_answers(
    preds: Sequence[str | None],
    placed: int,
    reps: list[str],
    known,
    both_ways: bool,
    needed: dict[tuple[str, str], None],
) -> int:
    """Place one problem's answers, from index `placed` on, while their verdicts are all known: a
    new cluster representative goes into `reps`; the first answer with an unknown verdict stops the
    walk and its pairs still to judge go into `needed`. Returns the new count of placed answers."""
    while placed < len(preds):
        pred = preds[placed]
        if pred is None:
            placed += 1
            continue
        verdicts = [known(pred, rep) for rep in reps]
        first_true = next((i for i, v in enumerate(verdicts) if v), len(verdicts))
        unknown = [rep for rep, v in zip(reps[:first_true], verdicts) if v is None]
        if unknown:  # the reps before the first known match must all be judged first
            for rep in unknown:
                needed[(pred, rep)] = None
                if both_ways:
                    needed[(rep, pred)] = None
            break
        if first_true == len(verdicts):
            reps.append(pred)
        placed += 1
    return placed


def cluster_answers(
    preds_per_problem: Sequence[Sequence[str | None]],
    equivalence: str,
    both_ways: bool,
    skip: set[str],
    processes: int,
    timeout_s: float,
) -> list[list[int]]:
    """Maj@k cluster labels for each problem's answers, as `majority_vote` assigns them.

    Each answer is compared only with the representatives of the clusters before it (never all
    pairs), every (answer, representative) verdict is cached for the whole file (a pair seen in
    another problem is not judged again), and the comparisons of one round (the next answer of
    every problem) go to the worker pool together. Answers in `skip` (their grading against gold
    timed out) are compared with nothing, so one slow answer costs one timeout, not one per pair.
    `both_ways`: equivalent when either direction says so (PW-OPSD's evaluator).
    """
    cache: dict[tuple[str, str], bool] = {}

    def known(a: str, b: str) -> bool | None:
        if not a.strip() or not b.strip():  # empty boxes: one cluster of their own (PW-OPSD's evaluator)
            return not a.strip() and not b.strip()
        if a == b and EQUIVALENCES[equivalence][1]:
            return True
        if a in skip or b in skip:
            return False
        keys = [(a, b), (b, a)] if both_ways else [(a, b)]
        if any(cache.get(key) is True for key in keys):
            return True
        if all(key in cache for key in keys):
            return False
        return None

    def equivalent(a: str, b: str) -> bool:
        verdict = known(a, b)
        if verdict is None:
            raise KeyError((a, b))  # every needed pair is judged before the vote
        return verdict

    placed = [0] * len(preds_per_problem)  # answers placed so far, per problem
    reps: list[list[str]] = [[] for _ in preds_per_problem]
    while True:
        needed: dict[tuple[str, str], None] = {}
        for p, preds in enumerate(preds_per_problem):
            placed[p] = _place_answers(preds, placed[p], reps[p], known, both_ways, needed)
        if not needed:
            break
        todo = [key for key in needed if key not in cache]
        for key, (ok, _) in zip(
            todo, judge_many(todo, processes=processes, timeout_s=timeout_s, equivalence=equivalence)
        ):
            cache[key] = ok
    return [majority_vote(list(preds), equivalent)[1] for preds in preds_per_problem]
