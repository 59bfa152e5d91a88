"""Table helpers shared by the report and the ablation table: number formatting and the
one-value-per-video view of a results table."""

from __future__ import annotations

import math

import pandas as pd

#: the attack (and method) name of no distortion / no watermark
IDENTITY = "identity"


def per_video(rows: pd.DataFrame, column: str) -> pd.Series:
    """One value per video (index ``video_id``): the first non-NaN value of ``column`` among
    the non-error rows (video-level metrics repeat across attack rows of one video)."""
    usable = rows[rows["status"] != "error"]
    if usable.empty:
        return pd.Series(dtype=float)
    return usable.groupby("video_id", sort=False)[column].first()


def _decimals(value: float) -> int:
    magnitude = abs(value) if math.isfinite(value) else 0.0
    return 1 if magnitude >= 100 else 2 if magnitude >= 1 else 3


def format_number(value: float, decimals: int | None = None) -> str:
    """``value`` with 1, 2 or 3 decimals by magnitude (or ``decimals``); nan/inf spelled."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{_decimals(value) if decimals is None else decimals}f}"


def format_cell(mean: float, lo: float, hi: float, n: int, n_default: int | None = None,
                mark: str = "") -> str:
    """``mean [lo, hi]`` (plus ``n=k`` when k differs from the row's n); ``unavailable``
    when there is no value."""
    if n == 0 or mean is None or math.isnan(mean):
        return "unavailable"
    decimals = _decimals(mean)  # the interval is printed to the precision of the mean
    text = format_number(mean, decimals) + mark
    if not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{format_number(lo, decimals)}, {format_number(hi, decimals)}]"
    if n_default is None or n != n_default:
        text += f" (n={n})"
    return text
