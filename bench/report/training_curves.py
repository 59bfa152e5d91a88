"""The report's training curves: every checkpoint's validation W-PSNR and V-PSNR against steps.

Input: the run manifest's ``training`` entry (``bench.run.runner.method_training_info``: per
method a ``curve`` of ``{step, w_psnr, v_psnr}``, steps counted over the ``--init`` chain). So
a reader sees whether each checkpoint had flattened when its training stopped. Points are
validation scores on the held-aside *training* clips, not on the evaluation set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["CURVES_LEGEND", "MAX_CURVES_PER_AXES", "curves_figure", "curves_table"]

#: methods drawn on one axes; more methods give more rows of panels
MAX_CURVES_PER_AXES = 7
CURVES_LEGEND = ("Validation W-PSNR and V-PSNR (dB, held-aside training clips, no attack) "
                 "against optimiser steps, summed over each checkpoint's --init chain.")
COLUMNS = ["method", "step", "w_psnr", "v_psnr"]


def curves_table(training: Optional[dict]) -> pd.DataFrame:
    """One row per validation point of each trained method's curve (COLUMNS), by method
    then step; methods without weights or without a curve give no rows."""
    rows = []
    for method, info in (training or {}).items():
        for point in (info or {}).get("curve") or []:
            rows.append({"method": method, "step": int(point["step"]),
                         "w_psnr": _float(point.get("w_psnr")),
                         "v_psnr": _float(point.get("v_psnr"))})
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["method", "step"], kind="stable").reset_index(drop=True)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def curves_figure(table: pd.DataFrame, path: Path) -> Optional[Path]:
    """Write the curves of ``curves_table`` to ``path`` (PNG): a row of two panels (W-PSNR,
    V-PSNR) per group of at most ``MAX_CURVES_PER_AXES`` methods, the row's legend right of
    it, outside the axes. None when there is no point to draw."""
    if table.empty:
        return None
    methods = list(dict.fromkeys(table["method"]))
    groups = [methods[i:i + MAX_CURVES_PER_AXES]
              for i in range(0, len(methods), MAX_CURVES_PER_AXES)]
    fig = Figure(figsize=(12.5, 3.6 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), 2, squeeze=False)
    for row, group in enumerate(groups):
        for col, (metric, label) in enumerate((("w_psnr", "validation W-PSNR (dB)"),
                                               ("v_psnr", "validation V-PSNR (dB)"))):
            ax = axes[row][col]
            for index, method in enumerate(group):
                part = table[table["method"] == method]
                finite = np.isfinite(part[metric].to_numpy(float))
                ax.plot(part["step"].to_numpy()[finite], part[metric].to_numpy(float)[finite],
                        marker="o", markersize=3, color=f"C{index % 10}", label=method)
            ax.set_xlabel("optimiser steps (over the --init chain)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        # one legend a row, right of its second panel, outside the axes
        axes[row][1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", borderaxespad=0,
                            fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
