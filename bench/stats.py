"""Uncertainty over videos: percentile-bootstrap confidence intervals and a paired test.

Both treat the video as the unit of sampling (one value per video) and ignore NaN values
(metrics that could not be computed for a video).
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable

import numpy as np


def _clean(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                       dtype=np.float64).reshape(-1)
    return array[~np.isnan(array)]


def bootstrap_ci(values: Iterable[float], n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap confidence interval.

    values: one number per video (NaN entries are dropped). Resamples the videos with
    replacement ``n_boot`` times (numpy ``default_rng(seed)``: deterministic for a seed) and
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
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(n_boot, data.size))
    means = data[idx].mean(axis=1)
    q = [(1 - level) / 2, (1 + level) / 2]
    # linear interpolation between +inf resample means would give NaN: use the nearest rank
    method = "linear" if np.isfinite(means).all() else "nearest"
    lo, hi = np.quantile(means, q, method=method)
    return (mean, float(lo), float(hi))


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


__all__ = ["bootstrap_ci", "paired_test"]
