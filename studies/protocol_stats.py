"""Statistics of the self-training protocol (`studies/selftrain_protocol.py`), numpy only.

Per arm and metric over seeds: the mean with a 95% percentile bootstrap interval, and against
the control the paired difference (over the seeds both arms have) with its own bootstrap
interval, a two-sided paired Wilcoxon signed-rank p-value and how many seeds it is positive on.

The Wilcoxon test drops zero differences, ranks the absolute differences (tied values get their
mean rank) and takes T+ = the sum of the positive differences' ranks. Up to `EXACT_MAX` nonzero
differences the p-value is exact: the null distribution of T+ (every sign pattern equally
likely, given the ranks) is counted by dynamic programming over doubled ranks, which are
integers also with ties. Above it, the normal approximation with the tie correction of the
variance and no continuity correction.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_MAX = 25
"""Largest number of nonzero differences whose Wilcoxon p-value is computed exactly."""
BOOTSTRAP_DRAWS = 10_000
BOOTSTRAP_SEED = 0


def bootstrap_interval(values, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED
                       ) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values` (1-D, n >= 1): the 2.5th and
    97.5th percentiles of the means of `draws` resamples with replacement (fixed `seed`)."""
    xs = np.asarray(values, dtype=np.float64)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"bootstrap_interval needs a non-empty 1-D array, got shape {xs.shape}")
    rng = np.random.default_rng(seed)
    means = rng.choice(xs, size=(draws, xs.size), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def signed_ranks(diffs) -> tuple[np.ndarray, np.ndarray]:
    """(ranks, positive) of the nonzero `diffs`: mean ranks (1-based) of |d| and whether each
    d > 0; zero differences are dropped."""
    d = np.asarray(diffs, dtype=np.float64)
    d = d[d != 0]
    order = np.argsort(np.abs(d), kind="stable")
    sorted_abs = np.abs(d)[order]
    ranks = np.empty(d.size)
    start = 0
    while start < d.size:  # a run of equal |d| shares the mean of its ranks
        end = start
        while end + 1 < d.size and sorted_abs[end + 1] == sorted_abs[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks, d > 0


def exact_null_counts(ranks: np.ndarray) -> np.ndarray:
    """counts[k] = how many of the 2^n sign patterns give 2 * T+ == k, for (mean) `ranks`."""
    doubled = np.rint(2 * np.asarray(ranks)).astype(np.int64)
    counts = np.zeros(int(doubled.sum()) + 1, dtype=np.float64)
    counts[0] = 1
    for r in doubled:  # each rank is either in T+ or not
        counts[r:] = counts[r:] + counts[:counts.size - r].copy()
    return counts


def wilcoxon_p(diffs) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value of `diffs` (arm - control per seed);
    1.0 when every difference is zero."""
    ranks, positive = signed_ranks(diffs)
    n = ranks.size
    if n == 0:
        return 1.0
    t_plus = float(ranks[positive].sum())
    if n <= EXACT_MAX:
        counts = exact_null_counts(ranks)
        k = int(round(2 * t_plus))
        total = counts.sum()
        low, high = counts[:k + 1].sum() / total, counts[k:].sum() / total
        return float(min(1.0, 2 * min(low, high)))
    mean = n * (n + 1) / 4
    _, tie_sizes = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float((tie_sizes ** 3 - tie_sizes).sum()) / 48
    z = (t_plus - mean) / math.sqrt(var)
    return float(math.erfc(abs(z) / math.sqrt(2)))


def paired(arm: dict[int, float], control: dict[int, float]) -> tuple[list[int], np.ndarray]:
    """(seeds both have, sorted; arm - control on them) of two {seed: value} maps."""
    seeds = sorted(set(arm) & set(control))
    return seeds, np.array([arm[s] - control[s] for s in seeds], dtype=np.float64)


def describe(values: dict[int, float]) -> dict:
    """{"n", "mean", "ci95"} of one arm's {seed: value} (mean None when there are none)."""
    xs = np.array([values[s] for s in sorted(values)], dtype=np.float64)
    if xs.size == 0:
        return {"n": 0, "mean": None, "ci95": None}
    return {"n": int(xs.size), "mean": float(xs.mean()), "ci95": list(bootstrap_interval(xs))}


def compare(arm: dict[int, float], control: dict[int, float]) -> dict:
    """The paired difference arm - control over their shared seeds: {"n", "seeds", "mean",
    "ci95", "wilcoxon_p", "positive"} (mean None when they share no seed)."""
    seeds, diff = paired(arm, control)
    if diff.size == 0:
        return {"n": 0, "seeds": [], "mean": None, "ci95": None, "wilcoxon_p": None,
                "positive": 0}
    return {"n": int(diff.size), "seeds": seeds, "mean": float(diff.mean()),
            "ci95": list(bootstrap_interval(diff)), "wilcoxon_p": wilcoxon_p(diff),
            "positive": int((diff > 0).sum())}
