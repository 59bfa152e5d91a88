"""The report's ablation table, laid out like the paper's: one row per Safe-Sora variant
(the paper's order, full model last) with W-PSNR (identity attack), V-PSNR and FVD measured
in this run beside the paper's figures. A variant absent from the run, or whose rows have no
value, says so instead of a number.
"""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from bench.reference import PAPER_ABLATION_NAMES, load_paper_ablation

__all__ = ["ABLATION_LEGEND", "ABLATION_METRICS", "ablation_markdown", "ablation_table"]

ABLATION_METRICS = ("w_psnr", "v_psnr", "fvd")
ABLATION_LEGEND = ("Safe-Sora variants, each trained and evaluated like the full model: "
                   "W-PSNR without attack, V-PSNR (dB) and FVD, mean [95% bootstrap CI] over "
                   "this run's videos, the paper's figures beside (VideoCrafter2, 320x512).")


def ablation_table(table1: pd.DataFrame) -> pd.DataFrame:
    """From Table 1 (``bench.report.quality_table``): columns ``method``, ``variant``,
    ``in_run`` and for each metric ``KEY``, ``KEY_lo``, ``KEY_hi``, ``KEY_n``, ``paper_KEY``."""
    paper = load_paper_ablation().set_index("variant")
    measured = table1.set_index("method") if not table1.empty else pd.DataFrame()
    records = []
    for method, variant in PAPER_ABLATION_NAMES.items():
        in_run = method in measured.index
        record = {"method": method, "variant": variant, "in_run": in_run}
        for key in ABLATION_METRICS:
            for suffix in ("", "_lo", "_hi"):
                record[key + suffix] = float(measured.loc[method, key + suffix]) if in_run \
                    else math.nan
            record[f"{key}_n"] = int(measured.loc[method, f"{key}_n"]) if in_run else 0
            record[f"paper_{key}"] = float(paper.loc[variant, key]) if variant in paper.index \
                else math.nan
        records.append(record)
    return pd.DataFrame.from_records(records)


def ablation_markdown(table: pd.DataFrame) -> str:
    """The ablation table as markdown; cells of variants not in the run read ``not run``."""
    from bench.report import format_cell, format_number

    headers = ["variant", "method"]
    for label in ("W-PSNR ↑ (dB)", "V-PSNR ↑ (dB)", "FVD ↓"):
        headers += [label, "paper"]
    body = []
    for r in table.itertuples(index=False):
        line = [r.variant, r.method]
        for key in ABLATION_METRICS:
            if not r.in_run:
                line.append("not run")
            else:
                line.append(format_cell(getattr(r, key), getattr(r, f"{key}_lo"),
                                        getattr(r, f"{key}_hi"), getattr(r, f"{key}_n")))
            paper = getattr(r, f"paper_{key}")
            line.append("–" if math.isnan(paper) else format_number(paper))
        body.append(line)
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
