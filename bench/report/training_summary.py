"""The report's training summary: what each method's weights cost and what it costs to run.

One row per method of a results folder, from the run manifest (``training``, written by the
runner from each checkpoint's card) and the rows (timings measured in the run):

* ``parameters``, ``checkpoint_mb`` (10^6 bytes), ``steps``, ``training_min`` and
  ``training_device``: from the card (NaN / empty for weight-free methods, or when the card
  does not say);
* ``validation_w_psnr`` / ``validation_v_psnr`` (dB): the last validation of training, on the
  held-aside *training* clips (not the evaluation set);
* ``embed_ms`` / ``extract_ms``: medians over the run's videos of the embedding time of a clip
  and of the extraction time of a clip under the identity attack, on the run's device; ``n``
  the number of videos they are taken over.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.core.results import Results

__all__ = ["TRAINING_LEGEND", "training_markdown", "training_table"]

TRAINING_LEGEND = ("Parameters, checkpoint size, steps and time (totals over a --init chain) "
                   "and device from each checkpoint's card; validation W-PSNR / V-PSNR (dB) "
                   "on the held-aside training clips at the end of training; embed / extract: "
                   "median milliseconds per clip in this run (extract under the identity "
                   "attack), n videos.")

COLUMNS = ["method", "trainable", "parameters", "checkpoint_mb", "steps", "training_min",
           "training_device", "validation_w_psnr", "validation_v_psnr", "embed_ms",
           "extract_ms", "n"]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _timings(rows: pd.DataFrame, method: str) -> tuple[float, float, int]:
    """(median embed ms per clip, median extract ms per clip (identity attack), videos)."""
    mine = rows[(rows["method"].astype(str) == method) & (rows["status"].astype(str) != "error")]
    embed = pd.to_numeric(mine.drop_duplicates("video_id")["embed_s"], errors="coerce").dropna()
    clean = mine[mine["attack"].astype(str) == "identity"]
    extract = pd.to_numeric(clean["extract_s"], errors="coerce").dropna()
    embed_ms = float(np.median(embed)) * 1000 if len(embed) else math.nan
    extract_ms = float(np.median(extract)) * 1000 if len(extract) else math.nan
    return embed_ms, extract_ms, int(len(embed))


def training_table(results: Results) -> pd.DataFrame:
    """One row per method of ``results`` (run order); columns ``COLUMNS``."""
    rows = results.rows
    training = (results.manifest or {}).get("training") or {}
    records = []
    for method in pd.unique(rows["method"].astype(str)):
        info = training.get(method) or {}
        embed_ms, extract_ms, n = _timings(rows, method)
        size = _float(info.get("checkpoint_bytes"))
        seconds = _float(info.get("training_seconds"))
        records.append({
            "method": method,
            "trainable": info.get("trainable"),
            "parameters": _float(info.get("parameters")),
            "checkpoint_mb": size / 1e6,
            "steps": _float(info.get("steps")),
            "training_min": seconds / 60,
            "training_device": info.get("training_device") or "",
            "validation_w_psnr": _float(info.get("validation_w_psnr")),
            "validation_v_psnr": _float(info.get("validation_v_psnr")),
            "embed_ms": embed_ms, "extract_ms": extract_ms, "n": n,
        })
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def _cell(value: float, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, fmt)


def training_markdown(table: pd.DataFrame) -> str:
    """The training summary as a GitHub table; weight-free methods say so."""
    if table.empty:
        return "No methods in the results."
    lines = []
    for r in table.itertuples(index=False):
        if r.trainable is False:
            weights = ["no weights", "–", "–", "–", "–", "–"]
        elif r.trainable is None:
            weights = ["not recorded"] + ["–"] * 5
        else:
            weights = [_cell(r.parameters, ",.0f"), _cell(r.checkpoint_mb, ".2f"),
                       _cell(r.steps, ",.0f"), _cell(r.training_min, ".1f"),
                       (r.training_device or "–"),
                       f"{_cell(r.validation_w_psnr, '.2f')} / {_cell(r.validation_v_psnr, '.2f')}"]
        lines.append([r.method, *weights, _cell(r.embed_ms, ",.0f"), _cell(r.extract_ms, ",.0f"),
                      str(r.n)])
    headers = ["method", "parameters", "checkpoint (MB)", "steps", "training (min)",
               "trained on", "validation W/V-PSNR (dB)", "embed (ms/clip)",
               "extract (ms/clip)", "n"]
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)
