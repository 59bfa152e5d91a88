"""Figures of a report: robustness vs attack strength, a methods x attacks heat map, curves
per attack family, the Safe-Sora ablation variants' curves and sample frame strips (PNG
files). Curve figures carry at most ``MAX_LINES`` lines an axes and their legends outside
the axes.

Uses matplotlib's object API (``Figure`` + the Agg canvas): no pyplot global state, no
display needed. Inputs are the tables of ``bench.report.build`` and the arrays of sample ``.npz``
files (``bench.core.results``): images ``(3, H, W)`` float in [0, 1].
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Optional

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

DPI = 100
DIFF_GAIN = 10.0  # amplification of |watermarked - cover| in sample strips
MAX_LINES = 7  # method curves per axes (more methods: more rows, or family pages)
ABSENT = "–"  # a heat map cell without a value

_METRIC_LABELS = {"w_psnr": "W-PSNR (dB)", "w_ssim": "W-SSIM"}
_X_LABELS = {"strength": "strength", "attack_bpp": "bits per pixel"}


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
                 methods: list[str], x: str = "strength",
                 colors: Optional[dict[str, str]] = None) -> list[str]:
    """One axis: ``metric`` mean vs ``x`` (a column of the robustness table: ``strength``, or
    ``attack_bpp`` for codecs) for ``attack``, a line + CI band per method; returns the
    methods drawn (no legend: the caller puts one outside the axes)."""
    table = robustness[robustness["attack"] == attack].copy()
    table[x] = pd.to_numeric(table[x], errors="coerce")
    drawn = []
    for index, method in enumerate(methods):
        part = table[(table["method"] == method) & np.isfinite(table[x])
                     & np.isfinite(table[metric])].sort_values(x)
        if part.empty:
            continue
        color = (colors or {}).get(method, f"C{index % 10}")
        xs = part[x].to_numpy(float)
        y = part[metric].to_numpy(float)
        lo = part[f"{metric}_lo"].to_numpy(float)
        hi = part[f"{metric}_hi"].to_numpy(float)
        ax.plot(xs, y, marker="o", color=color, label=method)
        if len(xs) > 1:
            ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
        else:  # a single grid point: a band has no width, show the interval as an error bar
            ax.errorbar(xs, y, yerr=[y - lo, hi - y], color=color, capsize=4, fmt="none")
        drawn.append(method)
    ax.set_title(attack)
    ax.set_xlabel(_X_LABELS.get(x, x))
    ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
    ax.grid(True, alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, f"no {metric} values", ha="center", va="center",
                transform=ax.transAxes)
    return drawn


def _legend_outside(ax, methods: list[str], colors: dict[str, str]) -> None:
    """A legend of ``methods`` to the right of ``ax``, outside it (the figure's constrained
    layout makes room for it)."""
    if methods:
        handles = [Line2D([], [], color=colors[m], marker="o", label=m) for m in methods]
        ax.legend(handles=handles, bbox_to_anchor=(1.02, 1), loc="upper left",
                  borderaxespad=0, fontsize=7)


def curves_figure(robustness: pd.DataFrame, attacks: list[str], methods: list[str],
                  metrics: tuple[str, ...] = ("w_psnr",), title: str = "") -> Figure:
    """Robustness curves: one column per attack, one row per metric and group of at most
    ``MAX_LINES`` methods (a line + CI band each), each row's legend right of it."""
    rows = [(metric, group) for metric in metrics for group in family_pages(methods)]
    cols = max(len(attacks), 1)
    fig = Figure(figsize=(3.6 * cols + 2.2, 3.0 * len(rows) + (0.4 if title else 0.0)),
                 dpi=DPI, layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (metric, group) in enumerate(rows):
        colors = {m: f"C{i % 10}" for i, m in enumerate(group)}
        drawn: set[str] = set()
        for c, attack in enumerate(attacks):
            drawn.update(_draw_attack(axes[r, c], robustness, attack, metric, group, colors=colors))
        _legend_outside(axes[r, -1], [m for m in group if m in drawn], colors)
    if not attacks:
        axes[0, 0].text(0.5, 0.5, "no attack with numeric strengths", ha="center",
                        va="center", transform=axes[0, 0].transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _methods(robustness: pd.DataFrame, methods: Optional[list[str]]) -> list[str]:
    return list(dict.fromkeys(robustness["method"])) if methods is None else methods


def robustness_figure(robustness: pd.DataFrame, attack: str, path: Path,
                      metric: str = "w_psnr", methods: Optional[list[str]] = None) -> Path:
    """``metric`` vs strength for one attack, one line per method (default: every method of
    the table) with its 95% CI band; more than ``MAX_LINES`` methods: rows of axes."""
    curves_figure(robustness, [attack], _methods(robustness, methods), (metric,)).savefig(path)
    return path


def robustness_grid(robustness: pd.DataFrame, attacks: list[str], path: Path,
                    metrics: tuple[str, ...] = ("w_psnr", "w_ssim"),
                    methods: Optional[list[str]] = None) -> Path:
    """A grid of robustness axes: one column per attack, one row per metric (and per group
    of ``MAX_LINES`` methods)."""
    curves_figure(robustness, attacks, _methods(robustness, methods), metrics).savefig(path)
    return path


def ablation_figure(robustness: pd.DataFrame, attacks: list[str], variants: list[str],
                    path: Path, metric: str = "w_psnr") -> Path:
    """``metric`` vs strength of the Safe-Sora model and its ablation variants (``variants``,
    the full model first), one axes per attack: apart from the other methods."""
    label = _METRIC_LABELS.get(metric, metric)
    fig = curves_figure(robustness, attacks, variants, (metric,),
                        title=f"{label}, Safe-Sora and its ablation variants")
    fig.savefig(path)
    return path


def _short(text: str, width: int = 90) -> str:
    """``text`` on one line, folders left out of file paths, cut to ``width`` characters
    (the report's tables keep the whole text)."""
    text = re.sub(r"(?:/[^\s/`'\"]+)+/([^\s/`'\"]+)", r"\1", " ".join(str(text).split()))
    return textwrap.shorten(text, width=width, placeholder=" ...")


def heatmap_figure(values: pd.DataFrame, path: Path, absent: Optional[dict[str, str]] = None,
                   metric: str = "w_psnr", title: str = "") -> Path:
    """A methods x attacks heat map: ``values`` has one row per method (index), one column per
    attack setting, NaN where there is no value; cells are annotated with their number, cells
    without one are grey and show ``ABSENT``. ``absent``: method -> why it has no values,
    written under the map (such methods are starred)."""
    absent = absent or {}
    data = values.to_numpy(dtype=float) if values.size else np.full((len(values), 0), np.nan)
    n_rows, n_cols = data.shape
    width = max(5.0, 2.5 + 0.75 * n_cols)
    chars = int(width * 16)  # 7-point characters on one line of the figure
    notes = [line for m, reason in absent.items()
             for line in textwrap.wrap(f"* {m}: {_short(reason, 2 * chars)}", chars,
                                       subsequent_indent="   ")]
    longest = max((len(str(c)) for c in values.columns), default=0)
    label_height = 0.045 * longest  # 7-point labels rotated by 50 degrees, in inches
    height = max(2.5, 1.2 + 0.38 * max(n_rows, 2) + label_height + 0.13 * len(notes))
    fig = Figure(figsize=(width, height), dpi=DPI)
    ax = fig.subplots()
    finite = data[np.isfinite(data)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin - 1.0, vmax + 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    if n_rows and n_cols:
        image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=vmin, vmax=vmax,
                          aspect="auto", interpolation="nearest")
        fig.colorbar(image, ax=ax, label=_METRIC_LABELS.get(metric, metric), fraction=0.04)
        for r in range(n_rows):
            for c in range(n_cols):
                value = data[r, c]
                if np.isfinite(value):
                    light = (value - vmin) / (vmax - vmin) < 0.6
                    ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if light else "black")
                else:
                    ax.text(c, r, ABSENT, ha="center", va="center", fontsize=8, color="0.3")
    else:
        ax.text(0.5, 0.5, "no methods or attacks", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xticks(range(n_cols), labels=[str(c) for c in values.columns], rotation=50,
                  ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(range(n_rows), labels=[f"{m} *" if m in absent else str(m)
                                         for m in values.index], fontsize=8)
    ax.set_title(title or f"{_METRIC_LABELS.get(metric, metric)} per method and attack",
                 fontsize=9)
    bottom = (0.13 * len(notes) + 0.1) / height if notes else 0.0
    fig.tight_layout(rect=(0, min(bottom, 0.5), 1, 1))
    if notes:
        fig.text(0.01, 0.05 / height, "\n".join(notes), fontsize=7, va="bottom",
                 linespacing=1.3)
    fig.savefig(path)
    return path


def family_pages(methods: list[str], per_page: int = MAX_LINES) -> list[list[str]]:
    """``methods`` in pages of at most ``per_page`` (one figure each)."""
    return [methods[i:i + per_page] for i in range(0, len(methods), per_page)] or [[]]


def family_figure(robustness: pd.DataFrame, family: str, attacks: list[str],
                  methods: list[str], x_columns: Optional[dict[str, str]] = None,
                  absent: Optional[dict[str, str]] = None, metric: str = "w_psnr",
                  page: tuple[int, int, int] = (1, 1, 0)) -> Figure:
    """One figure for an attack family: one axes per attack (x: ``x_columns[attack]``,
    default ``strength``), one line per method of ``methods`` (at most ``MAX_LINES``). The
    legend names the methods and, without a line, the ``absent`` ones with the reason.
    ``page``: (this page, pages, methods in all) for the title when methods are split."""
    if len(methods) > MAX_LINES:
        raise ValueError(f"at most {MAX_LINES} methods per family figure, got {len(methods)}")
    x_columns = x_columns or {}
    absent = absent or {}
    cols = min(max(len(attacks), 1), 4)
    rows = max(1, -(-len(attacks) // cols))
    fig = Figure(figsize=(3.6 * cols + 2.8, 3.0 * rows + 0.6), dpi=DPI, layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for i, ax in enumerate(axes.flat):
        if i < len(attacks):
            _draw_attack(ax, robustness, attacks[i], metric, methods,
                         x=x_columns.get(attacks[i], "strength"), colors=colors)
        else:
            ax.set_axis_off()
    if not attacks:
        axes[0, 0].text(0.5, 0.5, "no attack with numeric strengths", ha="center",
                        va="center", transform=axes[0, 0].transAxes)
    handles = [Line2D([], [], color=colors[m], marker="o", label=m) for m in methods]
    handles += [Line2D([], [], linestyle="none", label=f"{m}: absent ({_short(r, 70)})")
                for m, r in absent.items()]
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    number, pages, total = page
    split = f" (methods {(number - 1) * MAX_LINES + 1}-{(number - 1) * MAX_LINES + len(methods)}"\
        f" of {total}, page {number} of {pages})" if pages > 1 else ""
    fig.suptitle(f"{_METRIC_LABELS.get(metric, metric)}, {family} attacks{split}", fontsize=10)
    return fig


def family_figures(robustness: pd.DataFrame, family: str, attacks: list[str],
                   methods: list[str], out_dir: Path,
                   x_columns: Optional[dict[str, str]] = None,
                   absent: Optional[dict[str, str]] = None,
                   metric: str = "w_psnr") -> list[Path]:
    """``robustness_family_<family>.png`` (and ``_2``, ``_3``, ... when there are more than
    ``MAX_LINES`` methods: each page its own methods, every absent one listed on each)."""
    pages = family_pages(methods)
    paths = []
    for number, chunk in enumerate(pages, start=1):
        suffix = "" if number == 1 else f"_{number}"
        path = Path(out_dir) / f"robustness_family_{safe_name(family)}{suffix}.png"
        fig = family_figure(robustness, family, attacks, chunk, x_columns, absent, metric,
                            page=(number, len(pages), len(methods)))
        fig.savefig(path)
        paths.append(path)
    return paths


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


__all__ = ["MAX_LINES", "ablation_figure", "curves_figure", "family_figure", "family_figures",
           "family_pages", "heatmap_figure", "numeric_attacks", "robustness_figure",
           "robustness_grid", "safe_name", "sample_strip", "strip_panels"]
