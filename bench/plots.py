"""Figures of a report: robustness vs attack strength and sample frame strips (PNG files).

Uses matplotlib's object API (``Figure`` + the Agg canvas): no pyplot global state, no
display needed. Inputs are the tables of ``bench.report`` and the arrays of sample ``.npz``
files (``bench.results``): images ``(3, H, W)`` float in [0, 1].
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

DPI = 100
DIFF_GAIN = 10.0  # amplification of |watermarked - cover| in sample strips

_METRIC_LABELS = {"w_psnr": "W-PSNR (dB)", "w_ssim": "W-SSIM"}


def safe_name(text: str) -> str:
    """A file-name-safe form of an attack or method name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "unnamed"


def numeric_attacks(robustness: pd.DataFrame) -> list[str]:
    """Attacks (in table order) with at least one finite strength value."""
    out: list[str] = []
    for attack, group in robustness.groupby("attack", sort=False):
        if np.isfinite(pd.to_numeric(group["strength"], errors="coerce")).any():
            out.append(str(attack))
    return out


def _draw_attack(ax, robustness: pd.DataFrame, attack: str, metric: str,
                 methods: list[str]) -> None:
    """One axis: ``metric`` mean vs strength for ``attack``, a line + CI band per method."""
    table = robustness[robustness["attack"] == attack].copy()
    table["strength"] = pd.to_numeric(table["strength"], errors="coerce")
    drawn = 0
    for index, method in enumerate(methods):
        part = table[(table["method"] == method) & np.isfinite(table["strength"])
                     & np.isfinite(table[metric])].sort_values("strength")
        if part.empty:
            continue
        color = f"C{index % 10}"
        x = part["strength"].to_numpy(float)
        y = part[metric].to_numpy(float)
        lo = part[f"{metric}_lo"].to_numpy(float)
        hi = part[f"{metric}_hi"].to_numpy(float)
        ax.plot(x, y, marker="o", color=color, label=method)
        if len(x) > 1:
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
        else:  # a single grid point: a band has no width, show the interval as an error bar
            ax.errorbar(x, y, yerr=[y - lo, hi - y], color=color, capsize=4, fmt="none")
        drawn += 1
    ax.set_title(attack)
    ax.set_xlabel("strength")
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no {metric} values", ha="center", va="center",
                transform=ax.transAxes)


def robustness_figure(robustness: pd.DataFrame, attack: str, path: Path,
                      metric: str = "w_psnr") -> Path:
    """``metric`` vs strength for one attack, one line per method with its 95% CI band."""
    methods = list(dict.fromkeys(robustness["method"]))
    fig = Figure(figsize=(5, 3.5), dpi=DPI)
    _draw_attack(fig.subplots(), robustness, attack, metric, methods)
    fig.tight_layout()
    fig.savefig(path)
    return path


def robustness_grid(robustness: pd.DataFrame, attacks: list[str], path: Path,
                    metrics: tuple[str, ...] = ("w_psnr", "w_ssim")) -> Path:
    """A grid of robustness axes: one row per metric, one column per attack."""
    methods = list(dict.fromkeys(robustness["method"]))
    cols = max(len(attacks), 1)
    fig = Figure(figsize=(3.6 * cols, 3.0 * len(metrics)), dpi=DPI)
    axes = np.atleast_2d(fig.subplots(len(metrics), cols, squeeze=False))
    for r, metric in enumerate(metrics):
        for c, attack in enumerate(attacks):
            _draw_attack(axes[r, c], robustness, attack, metric, methods)
    if not attacks:
        axes[0, 0].text(0.5, 0.5, "no attack with numeric strengths", ha="center",
                        va="center", transform=axes[0, 0].transAxes)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _to_image(array: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """(3, H, W) or (H, W, 3) float in [0, 1] -> (H, W, 3) clipped, or None."""
    if array is None:
        return None
    image = np.asarray(array, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] in (1, 3):  # the schema stores CHW
        image = np.transpose(image, (1, 2, 0))
    if image.ndim == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.clip(np.nan_to_num(image), 0.0, 1.0)


def strip_panels(sample: dict) -> list[tuple[str, Optional[np.ndarray]]]:
    """The six labelled (H, W, 3) panels of one sample: cover, watermarked, amplified
    |difference| (x10, clipped to 1), attacked, embedded logo, recovered logo."""
    cover = _to_image(sample.get("cover"))
    marked = _to_image(sample.get("watermarked"))
    diff = None
    if cover is not None and marked is not None and cover.shape == marked.shape:
        diff = np.clip(np.abs(marked - cover) * DIFF_GAIN, 0.0, 1.0)
    return [
        ("cover", cover),
        ("watermarked", marked),
        (f"|difference| x{DIFF_GAIN:g}", diff),
        ("attacked", _to_image(sample.get("attacked"))),
        ("embedded logo", _to_image(sample.get("logo"))),
        ("recovered logo", _to_image(sample.get("recovered"))),
    ]


def sample_strip(method: str, samples: list[tuple[str, dict]], path: Path) -> Path:
    """One row of six panels per (attack label, sample arrays) for ``method``."""
    rows = max(len(samples), 1)
    fig = Figure(figsize=(12, 2.3 * rows + 0.4), dpi=DPI)
    axes = np.atleast_2d(fig.subplots(rows, 6, squeeze=False))
    for r, (label, sample) in enumerate(samples):
        for c, (title, image) in enumerate(strip_panels(sample)):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if image is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(image, interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(method)
    # fixed margins: the panels have no tick labels, and tight_layout costs ~0.3 s a figure
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.02, top=1 - 0.55 / height,
                        wspace=0.08, hspace=0.12)
    fig.savefig(path)
    return path


__all__ = ["numeric_attacks", "robustness_figure", "robustness_grid", "safe_name",
           "sample_strip", "strip_panels"]
