"""Sampling metrics as pure functions: Pass@k (unbiased), Avg@k, Maj@k, mean words.

Definitions (how each study extracts and compares the answers: METHODS.md, "Evaluation"):
- Avg@k: mean correctness over all k samples of all problems.
- Pass@k: unbiased estimator 1 - C(n-c, k) / C(n, k) per problem, averaged over problems.
- Maj@k: cluster the k extracted answers by math equivalence; all unparsable answers form one
  INVALID cluster that competes in the plurality vote and is scored incorrect if it wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

INVALID = -1  # cluster label of every unparsable (None) answer


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k for one problem with n samples of which c are correct.

    1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i) (no large binomials).
    """
    if not 0 <= c <= n or n <= 0:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and n > 0, got n={n} c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 1 <= k <= n, got n={n} k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def majority_vote(preds: Sequence[str | None], equivalent: Callable[[str, str], bool]) -> tuple[int | None, list[int]]:
    """Plurality vote over answers clustered by equivalence.

    Answer i (in sample order) joins the first earlier cluster whose first member r satisfies
    `equivalent(preds[i], preds[r])`, else starts a new cluster. Clusters are labelled 0, 1, ...
    in order of their first member; every None answer gets the label INVALID (-1), and together
    they form one cluster that competes in the vote.

    Ties are broken in favour of the cluster whose first member appears earliest.

    Returns (winner_index, clusters): winner_index is the sample index of the winning cluster's
    first member (the cluster's representative), or None when there are no answers or the INVALID
    cluster wins (scored incorrect); clusters[i] is the label of answer i.
    """
    clusters: list[int] = []
    representatives: list[int] = []  # sample index of each valid cluster's first member
    for i, pred in enumerate(preds):
        if pred is None:
            clusters.append(INVALID)
            continue
        for label, rep in enumerate(representatives):
            if equivalent(pred, preds[rep]):
                clusters.append(label)
                break
        else:
            clusters.append(len(representatives))
            representatives.append(i)
    if not clusters:
        return None, clusters
    # (size, -first index) for each cluster; INVALID's first index is its first None answer
    candidates: list[tuple[int, int, int]] = []  # (size, -first_index, label)
    for label, rep in enumerate(representatives):
        candidates.append((clusters.count(label), -rep, label))
    if INVALID in clusters:
        candidates.append((clusters.count(INVALID), -clusters.index(INVALID), INVALID))
    _, neg_first, label = max(candidates)
    return (None if label == INVALID else -neg_first), clusters


def maj_correct(correct: Sequence[bool], clusters: Sequence[int]) -> bool:
    """Whether the plurality cluster (ties: earliest first member) is correct.

    A valid cluster counts as correct when its first member is correct; INVALID never is.
    """
    if not clusters:
        return False
    first: dict[int, int] = {}
    size: dict[int, int] = {}
    for i, label in enumerate(clusters):
        first.setdefault(label, i)
        size[label] = size.get(label, 0) + 1
    winner = max(size, key=lambda label: (size[label], -first[label]))
    return winner != INVALID and bool(correct[first[winner]])


def word_count(text: str) -> int:
    return len(text.split())


def summarize(samples: Sequence[Mapping], k: int) -> dict[str, float]:
    """Metrics over problems: {"pass@k", "avg@k", "maj@k", "mean_words"} with the actual k in the keys.

    Each sample is one problem's record as in the eval JSON: "correct" (list of bool, n entries),
    "cluster" (labels from `majority_vote`) and "responses" (list of str), with n >= k.
    - pass@k: unbiased estimator from all n samples, averaged over problems;
    - avg@k: mean correctness over all n samples (the unbiased estimate of a single sample's
      accuracy; equal to pass@1), averaged over problems;
    - maj@k: majority vote over the first k samples (see `maj_correct`);
    - mean_words: mean whitespace word count over all responses.
    Values are unrounded floats.
    """
    if not samples:
        raise ValueError("summarize needs at least one problem")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pass_sum = avg_sum = maj_sum = 0.0
    words = n_responses = 0
    for index, problem in enumerate(samples):
        correct = [bool(c) for c in problem["correct"]]
        clusters = list(problem["cluster"])
        responses = list(problem["responses"])
        n = len(correct)
        if n < k:
            raise ValueError(f"problem {index} has {n} samples, fewer than k={k}")
        if len(clusters) != n or len(responses) != n:
            raise ValueError(
                f"problem {index}: {n} correct flags but {len(clusters)} cluster labels and {len(responses)} responses"
            )
        pass_sum += pass_at_k(n, sum(correct), k)
        avg_sum += sum(correct) / n
        maj_sum += maj_correct(correct[:k], clusters[:k])
        words += sum(word_count(r) for r in responses)
        n_responses += n
    m = len(samples)
    return {
        f"pass@{k}": pass_sum / m,
        f"avg@{k}": avg_sum / m,
        f"maj@{k}": maj_sum / m,
        "mean_words": words / n_responses if n_responses else 0.0,
    }
