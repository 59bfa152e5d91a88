"""Uncertainty over videos: percentile-bootstrap confidence intervals and a paired test.

Both treat the video as the unit of sampling (one value per video) and ignore NaN values
(metrics that could not be computed for a video). ``percentile_bootstrap`` (on
``scipy.stats.bootstrap``) is the project's one bootstrap: the per-row CIs here and the
set-level FVD interval (``bench.metrics.fvd``) both go through it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Iterable

import numpy as np


def _clean(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                       dtype=np.float64).reshape(-1)
    return array[~np.isnan(array)]


def percentile_bootstrap(data: np.ndarray, statistic: Callable[..., Any], n_resamples: int,
                         seed: int, level: float,
                         vectorized: bool = True) -> tuple[float, float]:
    """Percentile-bootstrap interval ``(lo, hi)`` of ``statistic`` over ``data``'s first axis.

    data: one observation per row (at least 2). ``scipy.stats.bootstrap`` resamples the rows
    with replacement ``n_resamples`` times, drawing all indices at once from
    ``numpy.random.default_rng(seed)``; lo/hi are the (1-level)/2 and (1+level)/2 quantiles
    of the resampled statistics. statistic: ``f(x, axis)`` when ``vectorized``, else
    ``f(x)`` on one resample. Quantiles are linear, except over a distribution holding an
    infinity, where linear interpolation would give NaN: there the nearest rank is used.
    """
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        # an infinite resample makes scipy's linear quantile NaN (handled below)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = bootstrap((data,), statistic, n_resamples=n_resamples, vectorized=vectorized,
                           confidence_level=level, method="percentile",
                           rng=np.random.default_rng(seed))
    values = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    if np.isfinite(values).all():
        return float(result.confidence_interval.low), float(result.confidence_interval.high)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2], method="nearest")
    return float(lo), float(hi)


def bootstrap_ci(values: Iterable[float], n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval.

    values: one number per video (NaN entries are dropped). Resamples the videos with
    replacement ``n_boot`` times (``percentile_bootstrap``: deterministic for a seed) and
    returns ``(mean, lo, hi)`` with lo/hi the (1-level)/2 and (1+level)/2 quantiles of the
    resampled means. No values -> ``(nan, nan, nan)``; one value v -> ``(v, v, v)``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    data = _clean(values)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return (mean, mean, mean)
    lo, hi = percentile_bootstrap(data, np.mean, n_boot, seed, level)
    return (mean, lo, hi)


def paired_test(a: Iterable[float], b: Iterable[float]) -> float:
    """Two-sided p-value that paired samples ``a`` and ``b`` differ in location.

    a, b: one value per video, same videos in the same order. Uses the **Wilcoxon
    signed-rank test** (``scipy.stats.wilcoxon``, zero differences dropped; exact null
    distribution for small samples without ties, normal approximation otherwise). Pairs with
    a NaN on either side are dropped. All differences zero -> 1.0; no pairs -> NaN. Note that
    with n <= 5 videos the smallest attainable p-value is 2 / 2**n >= 0.0625.
    """
    x = np.asarray(list(a), dtype=np.float64).reshape(-1)
    y = np.asarray(list(b), dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"paired_test needs samples of equal length, got {x.size} and {y.size}")
    diff = x - y
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return math.nan
    if np.all(diff == 0):
        return 1.0
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return float(result.pvalue)


__all__ = ["bootstrap_ci", "paired_test", "percentile_bootstrap"]
