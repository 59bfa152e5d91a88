"""The report's ablation table, laid out like the paper's: one row per Safe-Sora variant
(the paper's order, full model last) with W-PSNR (identity attack), V-PSNR and FVD measured
in this run beside the paper's figures. A variant absent from the run, or whose rows have no
value, says so instead of a number.

Beside them: each checkpoint's training steps and the checkpoint it was warm-started from
(from the run manifest), so that a reader sees whether variants and full model had the same
budget, and the paired W-PSNR difference to the full model over the videos both have.
"""

from __future__ import annotations

import math

import pandas as pd
from tabulate import tabulate

from bench.core.reference import PAPER_ABLATION_NAMES, load_paper_ablation
from bench.core.stats import bootstrap_ci, paired_test
from bench.report.formatting import IDENTITY, format_cell, format_number, per_video

__all__ = ["ABLATION_LEGEND", "ABLATION_METRICS", "FULL_MODEL", "VARIANT_PREFIX",
           "ablation_markdown", "ablation_table", "split_variants"]

ABLATION_METRICS = ("w_psnr", "v_psnr", "fvd")
FULL_MODEL = "safe-sora"
VARIANT_PREFIX = f"{FULL_MODEL}/"  # the ablation variants' names: safe-sora/no-rtl, ...
ABLATION_LEGEND = ("Safe-Sora variants: W-PSNR without attack, V-PSNR (dB) and FVD, mean "
                   "[95% bootstrap CI] over this run's videos, the paper's figures beside "
                   "(VideoCrafter2, 320x512, every variant trained from scratch as long as the "
                   "full model). Steps: the checkpoint's training steps, a --init chain "
                   "counted whole, and the checkpoint it was warm-started from; a variant "
                   "compares with the full model only at equal steps. ΔW-PSNR: the paired "
                   "difference to the full model over the videos both have, mean [95% "
                   "bootstrap CI] and Wilcoxon signed-rank p.")


def split_variants(methods: list[str]) -> tuple[list[str], list[str]]:
    """(the methods other than the ablation variants, the ablation's curves: the full model
    then its variants, or [] when the run has no variant). The report draws them apart."""
    variants = [m for m in methods if m.startswith(VARIANT_PREFIX)]
    others = [m for m in methods if m not in variants]
    if not variants:
        return others, []
    return others, ([FULL_MODEL] if FULL_MODEL in methods else []) + variants


def _steps(info: dict) -> tuple[float, str]:
    """(total steps, ``"from METHOD at N steps"`` or ``""``) from a manifest training entry."""
    try:
        steps = float(info.get("steps"))
    except (TypeError, ValueError):
        steps = math.nan
    source = info.get("init_method")
    start = info.get("init_steps")
    origin = f"from {source} at {int(start)} steps" if source and start is not None else ""
    return steps, origin


def _paired_w_psnr(rows: pd.DataFrame, method: str) -> dict:
    """W-PSNR of ``method`` minus the full model's, identity attack, per shared video:
    ``{"mean", "lo", "hi", "n", "p"}`` (NaN and n 0 when no video has both)."""

    clean = rows[rows["attack"] == IDENTITY]
    pair = pd.concat([per_video(clean[clean["method"] == method], "w_psnr"),
                      per_video(clean[clean["method"] == FULL_MODEL], "w_psnr")],
                     axis=1, join="inner").dropna()
    ours, full = pair.iloc[:, 0].to_numpy(float), pair.iloc[:, 1].to_numpy(float)
    mean, lo, hi = bootstrap_ci(ours - full)
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(pair), "p": paired_test(ours, full)}


def ablation_table(table1: pd.DataFrame, rows: pd.DataFrame | None = None,
                   training: dict | None = None) -> pd.DataFrame:
    """From Table 1 (``bench.report.build.quality_table``), the run's prepared rows
    (``bench.report.build.prepare_rows``) and the manifest's ``training`` entries: columns
    ``method``, ``variant``, ``in_run``, ``steps``, ``origin``, for each metric ``KEY``,
    ``KEY_lo``, ``KEY_hi``, ``KEY_n``, ``paper_KEY``, and ``d_w_psnr`` (with ``_lo``, ``_hi``,
    ``_n``, ``_p``: the paired difference to the full model; NaN on the full model's row)."""
    paper = load_paper_ablation().set_index("variant")
    measured = table1.set_index("method") if not table1.empty else pd.DataFrame()
    training = training or {}
    full_in_run = FULL_MODEL in measured.index and rows is not None
    records = []
    for method, variant in PAPER_ABLATION_NAMES.items():
        in_run = method in measured.index
        steps, origin = _steps(training.get(method) or {})
        record = {"method": method, "variant": variant, "in_run": in_run, "steps": steps,
                  "origin": origin}
        for key in ABLATION_METRICS:
            for suffix in ("", "_lo", "_hi"):
                record[key + suffix] = float(measured.loc[method, key + suffix]) if in_run \
                    else math.nan
            record[f"{key}_n"] = int(measured.loc[method, f"{key}_n"]) if in_run else 0
            record[f"paper_{key}"] = float(paper.loc[variant, key]) if variant in paper.index \
                else math.nan
        delta = _paired_w_psnr(rows, method) if in_run and full_in_run and method != FULL_MODEL \
            else {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "p": math.nan}
        record.update({f"d_w_psnr{'' if k == 'mean' else '_' + k}": v for k, v in delta.items()})
        records.append(record)
    return pd.DataFrame.from_records(records)


def ablation_markdown(table: pd.DataFrame) -> str:
    """The ablation table as markdown; cells of variants not in the run read ``not run``."""

    headers = ["variant", "method", "steps"]
    for label in ("W-PSNR ↑ (dB)", "V-PSNR ↑ (dB)", "FVD ↓"):
        headers += [label, "paper"]
    headers += ["ΔW-PSNR vs full (dB)", "p"]
    body = []
    for r in table.itertuples(index=False):
        steps = "–" if math.isnan(r.steps) else f"{r.steps:,.0f}"
        line = [r.variant, r.method, f"{steps} ({r.origin})" if r.origin else steps]
        for key in ABLATION_METRICS:
            if not r.in_run:
                line.append("not run")
            else:
                line.append(format_cell(getattr(r, key), getattr(r, f"{key}_lo"),
                                        getattr(r, f"{key}_hi"), getattr(r, f"{key}_n")))
            paper = getattr(r, f"paper_{key}")
            line.append("–" if math.isnan(paper) else format_number(paper))
        if r.method == FULL_MODEL:
            line += ["reference", "–"]
        elif not r.in_run or r.d_w_psnr_n == 0:
            line += ["–", "–"]
        else:
            line += [format_cell(r.d_w_psnr, r.d_w_psnr_lo, r.d_w_psnr_hi, r.d_w_psnr_n),
                     "–" if math.isnan(r.d_w_psnr_p) else f"{r.d_w_psnr_p:.3g}"]
        body.append(line)
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
