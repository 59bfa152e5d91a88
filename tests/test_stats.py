"""bench.core.stats: bootstrap CIs and the paired test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.core.stats import bootstrap_ci, paired_test


def test_ci_contains_true_mean_of_a_large_normal_sample():
    values = np.random.default_rng(1).normal(loc=3.0, scale=2.0, size=2000)
    mean, lo, hi = bootstrap_ci(values)
    assert mean == pytest.approx(values.mean())
    assert lo < 3.0 < hi
    # width close to the normal-theory 95% interval 2 * 1.96 * sigma / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * 2.0 / math.sqrt(2000), rel=0.15)


def test_ci_coverage_over_repeated_samples():
    rng = np.random.default_rng(2)
    hits = sum(lo <= 0.0 <= hi for _, lo, hi in
               (bootstrap_ci(rng.normal(size=60), n_boot=400, seed=s) for s in range(200)))
    assert 0.88 <= hits / 200 <= 0.99


def test_ci_shrinks_with_n():
    rng = np.random.default_rng(3)
    widths = []
    for n in (20, 200, 2000):
        _, lo, hi = bootstrap_ci(rng.normal(size=n))
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(10, rel=0.3)  # ~ sqrt(100)


def test_ci_deterministic_for_a_seed_and_level():
    values = np.random.default_rng(4).exponential(size=50)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)
    _, lo90, hi90 = bootstrap_ci(values, level=0.90)
    _, lo99, hi99 = bootstrap_ci(values, level=0.99)
    assert lo99 < lo90 and hi90 < hi99


def test_ci_nan_handling_and_degenerate_inputs():
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    assert all(math.isnan(x) for x in bootstrap_ci([math.nan, math.nan]))
    assert bootstrap_ci([2.5]) == (2.5, 2.5, 2.5)
    assert bootstrap_ci([4.0, 4.0, 4.0]) == (4.0, 4.0, 4.0)
    with_nan = bootstrap_ci([1.0, math.nan, 3.0, 5.0])
    assert with_nan == bootstrap_ci([1.0, 3.0, 5.0])
    assert with_nan[0] == 3.0 and 1.0 <= with_nan[1] <= 3.0 <= with_nan[2] <= 5.0
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], level=1.5)


def _loop_percentile_bootstrap(values, n_boot, rng, level=0.95):
    """Reference: float64 loop, one resample of the mean per iteration, linear quantiles."""
    means = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        means[i] = values[rng.integers(0, values.size, size=values.size)].mean()
    return np.quantile(means, [(1 - level) / 2, (1 + level) / 2])


def test_ci_equals_a_numpy_loop_with_the_same_draws():
    # same seed, same draws (one generator, N indices per resample): the interval the suite
    # has always published, to round-off
    values = np.random.default_rng(8).normal(loc=1.0, scale=3.0, size=25)
    for seed, level in ((0, 0.95), (5, 0.90)):
        _, lo, hi = bootstrap_ci(values, n_boot=500, seed=seed, level=level)
        ref = _loop_percentile_bootstrap(values, 500, np.random.default_rng(seed), level)
        assert (lo, hi) == pytest.approx(tuple(ref), rel=1e-12, abs=1e-12)


def test_ci_agrees_with_an_independent_loop_within_monte_carlo_error():
    values = np.random.default_rng(9).normal(loc=1.0, scale=3.0, size=25)
    n_boot = 4000
    _, lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=0)
    ref = _loop_percentile_bootstrap(values, n_boot, np.random.default_rng(12345))
    # The 2.5% quantile of B resampled means has standard error sqrt(p (1 - p) / B) / f(q),
    # f the density of the bootstrap distribution at q; that distribution is close to
    # normal with sd s = std(values) / sqrt(n), so f(q) = phi(1.96) / s. Two independent
    # estimates differ with sd sqrt(2) times that: allow 4 of those (about 0.2 s here).
    s = values.std() / math.sqrt(values.size)
    phi = math.exp(-1.96 ** 2 / 2) / math.sqrt(2 * math.pi)
    tol = 4 * math.sqrt(2) * math.sqrt(0.025 * 0.975 / n_boot) * s / phi
    assert abs(lo - ref[0]) < tol and abs(hi - ref[1]) < tol
    assert tol < 0.25 * (hi - lo)  # the check is tight next to the interval itself


def test_ci_with_an_infinite_value_uses_nearest_ranks(recwarn):
    mean, lo, hi = bootstrap_ci([1.0, 2.0, math.inf, 3.0])
    assert mean == math.inf and hi == math.inf
    assert 1.0 <= lo <= 2.0  # a resample without the infinity
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_paired_test_detects_a_constant_shift_not_a_zero_shift():
    base = np.random.default_rng(5).normal(scale=5.0, size=30)
    # the shift is small next to the spread of base (an unpaired test would miss it) but
    # the same in every pair
    assert paired_test(base + 0.5, base) < 1e-4
    assert paired_test(base, base) == 1.0
    # zero-mean noise around a zero shift is not significant (for this seed)
    noise = np.random.default_rng(6).normal(scale=1.0, size=30)
    assert paired_test(base + noise, base) > 0.05


def test_paired_test_matches_scipy_and_drops_nan_pairs():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=15), rng.normal(size=15)
    assert paired_test(a, b) == pytest.approx(wilcoxon(a - b).pvalue)
    a_nan = np.append(a, math.nan)
    b_nan = np.append(b, 0.0)
    assert paired_test(a_nan, b_nan) == pytest.approx(paired_test(a, b))
    assert math.isnan(paired_test([math.nan], [1.0]))
    with pytest.raises(ValueError):
        paired_test([1.0, 2.0], [1.0])
