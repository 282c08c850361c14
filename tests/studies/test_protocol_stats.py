"""The protocol's statistics (studies/protocol_stats.py): exact Wilcoxon p-values on cases
counted by hand, the bootstrap interval, and pairing by shared seeds."""

import numpy as np
import pytest

from studies.protocol_stats import (
    EXACT_MAX,
    bootstrap_interval,
    compare,
    describe,
    exact_null_counts,
    paired,
    signed_ranks,
    wilcoxon_p,
)


def test_five_positive_differences_give_two_in_32():
    # T+ = 15 is the largest of 32 equally likely sign patterns: p = 2 * 1/32
    assert wilcoxon_p([0.5, 1.0, 2.0, 3.0, 4.0]) == pytest.approx(2 / 32)


def test_one_negative_smallest_difference():
    # ranks 1..5, the rank-1 difference negative: T+ = 14; T+ >= 14 in 2 of 32 patterns
    assert wilcoxon_p([-1, 2, 3, 4, 5]) == pytest.approx(4 / 32)


def test_zero_differences_are_dropped():
    assert wilcoxon_p([0, 0, 1, 2, 3, 4, 5]) == pytest.approx(2 / 32)
    assert wilcoxon_p([0.0, 0.0]) == 1.0


def test_ties_share_their_mean_rank():
    ranks, positive = signed_ranks([1, -1, 2, 3])
    assert ranks.tolist() == [1.5, 1.5, 3, 4] and positive.tolist() == [True, False, True, True]
    # T+ = 8.5 of 10; the 16 subset sums of {1.5, 1.5, 3, 4} reach >= 8.5 three times
    assert wilcoxon_p([1, -1, 2, 3]) == pytest.approx(2 * 3 / 16)
    # all positive with a tie: T+ = 6 is the largest of 8 patterns
    assert wilcoxon_p([1, 1, 2]) == pytest.approx(2 / 8)


def test_null_counts_sum_to_every_sign_pattern():
    counts = exact_null_counts(np.arange(1, 11))
    assert counts.sum() == 2 ** 10
    assert counts[0] == 1 and counts[-1] == 1 and np.allclose(counts, counts[::-1])


def test_symmetric_in_the_sign():
    d = [3.0, -1.0, 4.0, 1.5, -5.0, 9.0, 2.5]
    assert wilcoxon_p(d) == pytest.approx(wilcoxon_p([-x for x in d]))


def test_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (6, 12, EXACT_MAX):  # exact, no ties
        d = rng.normal(0.4, 1.0, n)
        expected = stats.wilcoxon(d, method="exact").pvalue
        assert wilcoxon_p(d) == pytest.approx(expected, rel=1e-9)
    d = np.round(rng.normal(0.3, 1.0, 40), 1)  # normal approximation, with ties
    expected = stats.wilcoxon(d, method="approx", correction=False).pvalue
    assert wilcoxon_p(d) == pytest.approx(expected, rel=1e-9)


def test_bootstrap_interval_holds_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(5, 2, 5), rng.normal(5, 2, 200)
    for xs in (small, large):
        low, high = bootstrap_interval(xs)
        assert low < xs.mean() < high
    widths = [high - low for low, high in map(bootstrap_interval, (small, large))]
    assert widths[1] < widths[0] / 2  # about sqrt(200 / 5) = 6x narrower
    assert bootstrap_interval([2.0]) == (2.0, 2.0)
    assert bootstrap_interval(small) == bootstrap_interval(small)  # fixed seed
    with pytest.raises(ValueError):
        bootstrap_interval([])


def test_paired_differences_use_only_shared_seeds():
    arm = {0: 10.0, 1: 12.0, 2: 9.0, 5: 100.0}
    control = {0: 8.0, 1: 13.0, 2: 6.0, 7: -100.0}
    seeds, diff = paired(arm, control)
    assert seeds == [0, 1, 2] and diff.tolist() == [2.0, -1.0, 3.0]
    result = compare(arm, control)
    assert result["n"] == 3 and result["positive"] == 2
    assert result["mean"] == pytest.approx(4 / 3)
    assert compare(arm, {9: 1.0})["mean"] is None


def test_describe():
    out = describe({1: 1.0, 0: 3.0})
    assert out["n"] == 2 and out["mean"] == 2.0 and out["ci95"][0] <= 2.0 <= out["ci95"][1]
    assert describe({})["mean"] is None
