"""``bench report``: tables and figures built from a results folder alone.

Outputs (in ``out_dir``): ``table1.csv`` / ``table1.md`` (the paper's Table 1: watermark
fidelity and video quality per method, with the paper's figures beside), ``robustness.csv``
/ ``robustness.md`` (W-PSNR, W-SSIM per method and attack setting),
``robustness_<attack>.png`` per attack with numeric strengths, ``robustness_grid.png`` (the
paper's attacks), ``robustness_ablation.png`` (the same for the Safe-Sora ablation
variants, which the other curve figures leave out), ``robustness_heatmap.png`` /
``robustness_heatmap.csv`` (mean W-PSNR per method and attack at its default setting, each
chain as given), ``robustness_family_<family>.png`` (W-PSNR vs strength, or bits per pixel
for codecs when the rows have ``attack_bpp``, one axes per attack of the family, at most
seven methods a figure: ``_2``, ``_3`` ... hold the others), ``samples_<method>.png``,
``ablation.csv`` (Safe-Sora variants beside the paper's ablation, bench/report/ablation.py),
``training.csv`` (the training summary, bench/report/training_summary.py) and ``README.md`` (the
report). Every mean comes with a 95% percentile-bootstrap CI over videos and the number of
videos it is taken over. Curve figures have at most seven lines an axes, legends outside
the axes."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench import metrics
from bench.core import registry
from bench.core.api import METRIC_NOT_APPLICABLE, BenchError
from bench.core.reference import load_paper_table1
from bench.core.results import (
    METRIC_COLUMNS,
    Results,
    load_results,
    metric_status,
    require_complete,
    usable_folder,
    usable_rows,
    version_text,
)
from bench.core.stats import bootstrap_ci, paired_test
from bench.core.timing import TIMINGS_LEGEND, timings_markdown, timings_table
from bench.report import plots
from bench.report.ablation import ABLATION_LEGEND, ablation_markdown, ablation_table, split_variants
from bench.report.formatting import IDENTITY, format_cell, format_number, per_video
from bench.report.training_curves import CURVES_LEGEND, curves_figure, curves_table
from bench.report.training_summary import TRAINING_LEGEND, training_markdown, training_table

H264 = "h264"
ALPHA = 0.05  # significance level of the best-vs-runner-up marker
MARK = "†"
MAX_ERRORS_LISTED = 5
MISSING = "–"


@dataclass(frozen=True)
class Column:
    """A Table 1 column: CSV ``key``, source ``metric`` column, display ``scale``."""

    key: str
    metric: str
    scale: float = 1.0

    @property
    def spec(self):
        return metrics.by_column(self.metric).spec

    @property
    def label(self) -> str:
        name = "tLP" if self.metric == "tlp" else self.spec.name.upper()
        arrow = "↑" if self.spec.higher_is_better else "↓"
        unit = f" ({self.spec.unit})" if self.spec.unit else ""
        scale = f" x{self.scale:g}" if self.scale != 1 else ""
        return f"{name}{scale} {arrow}{unit}"


TABLE1_COLUMNS = [
    Column("w_psnr", "w_psnr"), Column("w_ssim", "w_ssim"), Column("v_psnr", "v_psnr"),
    Column("v_ssim", "v_ssim"), Column("v_lpips", "v_lpips"), Column("tlp_x100", "tlp", 100.0),
    Column("fvd", "fvd"),
]


def table1_columns(columns) -> list[Column]:
    """Table 1's columns: the paper's, then one per plugin row metric whose column is in
    ``columns`` (the rows' or the table's)."""
    builtin = {c.metric for c in TABLE1_COLUMNS} | set(METRIC_COLUMNS)
    plugins = [m.column for m in metrics.registered()
               if m.level == "row" and m.column not in builtin and m.column in set(columns)]
    return [*TABLE1_COLUMNS, *(Column(c, c) for c in plugins)]


ROBUSTNESS_METRICS = ("w_psnr", "w_ssim", "patch_acc")
NOT_APPLICABLE = "n/a"
HEATMAP_METRIC = "w_psnr"
#: the order of the family figures (bench.core.api.Attack.family); other families follow by name
FAMILY_ORDER = ("paper", "codec", "geometric", "photometric", "temporal", "chain", "other")
BPP = "attack_bpp"  # a row column some codec attacks may fill: the x-axis of their curves
WATERMARK_METRICS = ("w_psnr", "w_ssim")  # taken from the identity attack in Table 1


@dataclass
class Notes:
    """What the report says beside the tables: why metrics are missing, what failed."""

    #: Table 1 key -> reason -> methods the metric is unavailable for
    unavailable: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def add(self, key: str, reason: str, method: str) -> None:
        self.unavailable.setdefault(key, {}).setdefault(reason, set()).add(method)


# --------------------------------------------------------------------------- data preparation


def prepare_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``rows`` with metric and strength columns as floats (bad cells -> NaN)."""
    rows = rows.copy()
    measured = [c for c in metrics.row_columns() if c in rows.columns]
    for column in [*measured, "strength", *([BPP] if BPP in rows.columns else [])]:
        rows[column] = pd.to_numeric(rows[column], errors="coerce")
    for column in ("method", "attack", "attack_params", "video_id", "status"):
        rows[column] = rows[column].astype(str)
    rows["error"] = rows["error"].fillna("").astype(str)
    rows["method_version"] = rows["method_version"].map(version_text)
    return rows


def _attack_summary(rows: pd.DataFrame) -> str:
    """``blur x3, h264 x5, ...``: attacks with their number of settings, in run order."""
    counts = rows.drop_duplicates("attack_params").groupby("attack", sort=False).size()
    return ", ".join(f"{a} x{n}" for a, n in counts.items()) or "none"


def _in_order(values) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values))


def metric_reasons(rows: pd.DataFrame) -> dict[str, list[str]]:
    """Why metrics are missing: metric column -> its distinct reasons, from the rows'
    ``metric_status``; the reasons of rows whose method could not run at all (status
    ``unavailable``: a missing checkpoint, ...) are filed under ``""``."""
    out: dict[str, list[str]] = {}
    for cell in rows.get("metric_status", pd.Series(dtype=str)):
        for column, entry in metric_status(cell).items():
            out.setdefault(column, []).append(str(entry.get("reason") or "no reason given"))
    for text in rows.loc[rows["status"] == "unavailable", "error"]:
        if str(text).strip():
            out.setdefault("", []).append(str(text).strip())
    return {k: list(dict.fromkeys(v)) for k, v in out.items()}


def not_applicable(rows: pd.DataFrame, column: str) -> bool:
    """Every row of ``rows`` has ``column`` as ``not_applicable`` (e.g. patch accuracy of a
    method that reports no patch positions)."""
    cells = [metric_status(c).get(column, {}).get("status") for c in rows["metric_status"]] \
        if "metric_status" in rows.columns else []
    return bool(cells) and all(c == METRIC_NOT_APPLICABLE for c in cells)


# --------------------------------------------------------------------------- tables


def _summary(values: pd.Series, scale: float = 1.0) -> dict:
    data = values.to_numpy(dtype=float) * scale
    mean, lo, hi = bootstrap_ci(data)
    return {"mean": mean, "lo": lo, "hi": hi, "n": int(np.count_nonzero(~np.isnan(data)))}


def _fvd_entry(sets: pd.DataFrame, method: str) -> tuple[dict, str]:
    """(summary, reason) of FVD for ``method`` from sets.csv, attack identity."""
    empty = {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    if sets is None or sets.empty or "metric" not in sets.columns:
        return empty, "no set-level results (sets.csv) in the results folder"
    chosen = sets[(sets["metric"].astype(str) == "fvd") & (sets["method"].astype(str) == method)
                  & (sets["attack"].astype(str) == IDENTITY)]
    if chosen.empty:
        return empty, "no FVD entry for the identity attack in sets.csv"
    entry = chosen.iloc[0]
    value = pd.to_numeric(pd.Series([entry.get("value")]), errors="coerce").iloc[0]
    n = pd.to_numeric(pd.Series([entry.get("n")]), errors="coerce").iloc[0]
    reason = "" if pd.isna(entry.get("reason")) else str(entry.get("reason"))
    if pd.isna(value):
        return empty, reason or f"FVD status {entry.get('status')!s} without a reason"
    # the run's bootstrap interval over videos (pairs resampled), when it wrote one
    lo, hi = (pd.to_numeric(pd.Series([entry.get(k, math.nan)]), errors="coerce").iloc[0]
              for k in ("ci_lo", "ci_hi"))
    return {"mean": float(value), "lo": float(lo), "hi": float(hi),
            "n": int(n) if not pd.isna(n) else 0}, ""


def quality_table(results: Results, notes: Notes | None = None) -> pd.DataFrame:
    """Table 1: one row per method. Columns ``method``, ``method_version``, ``n_videos`` and
    per key (``w_psnr`` .. ``tlp_x100``, ``fvd``): ``KEY`` (mean), ``KEY_lo``, ``KEY_hi``
    (95% bootstrap CI), ``KEY_n`` (videos), ``KEY_p`` (best vs runner-up paired Wilcoxon
    p-value, on the best method's row), ``KEY_sig`` (p < 0.05 there) and ``paper_KEY``.

    W-PSNR/W-SSIM come from the identity attack rows; video metrics take one value per
    video over all non-error rows; tLP is multiplied by 100; FVD comes from sets.csv.
    """
    notes = notes if notes is not None else Notes()
    rows = prepare_rows(results.rows)
    paper = load_paper_table1().set_index("method")
    methods = _in_order(rows["method"])
    per_method_values: dict[str, dict[str, pd.Series]] = {}
    records = []
    columns = table1_columns(rows.columns)
    for method in methods:
        mine = rows[rows["method"] == method]
        reasons = metric_reasons(mine)
        record = {"method": method,
                  "method_version": ",".join(_in_order(mine["method_version"])),
                  "n_videos": int(mine["video_id"].nunique())}
        per_method_values[method] = {}
        for col in columns:
            if col.metric == "fvd":
                summary, reason = _fvd_entry(results.sets, method)
            else:
                source = mine[mine["attack"] == IDENTITY] if col.metric in WATERMARK_METRICS \
                    else mine
                values = per_video(source, col.metric) * col.scale
                per_method_values[method][col.key] = values
                summary = _summary(values)
                reason = ""
                if summary["n"] == 0:
                    if col.metric in WATERMARK_METRICS and source.empty:
                        reason = "no rows of the identity attack"
                    elif (source["status"] == "error").all():
                        reason = "every row of this method is an error row"
                    else:
                        reason = "; ".join(reasons.get(col.metric, [])) \
                            or "; ".join(reasons.get("", [])) or "no value in any row"
            if reason:
                notes.add(col.key, reason, method)
            record[col.key] = summary["mean"]
            record[f"{col.key}_lo"] = summary["lo"]
            record[f"{col.key}_hi"] = summary["hi"]
            record[f"{col.key}_n"] = summary["n"]
            record[f"{col.key}_p"] = math.nan
            record[f"{col.key}_sig"] = False
            paper_value = paper[col.metric].get(method, math.nan) \
                if method in paper.index and col.metric in paper.columns else math.nan
            record[f"paper_{col.key}"] = float(paper_value)
        records.append(record)
    table = pd.DataFrame.from_records(records)
    if not table.empty:
        for col in columns:
            if col.metric != "fvd":
                _mark_best(table, col, per_method_values)
    return table


def _mark_best(table: pd.DataFrame, col: Column,
               values: dict[str, dict[str, pd.Series]]) -> None:
    """Set ``KEY_p``/``KEY_sig`` on the best method's row: paired test vs the runner-up over
    the videos both have a value for."""
    ranked = table[np.isfinite(table[col.key].astype(float))]
    if len(ranked) < 2:
        return
    ranked = ranked.sort_values(col.key, ascending=not col.spec.higher_is_better)
    best, second = ranked["method"].iloc[0], ranked["method"].iloc[1]
    if ranked[col.key].iloc[0] == ranked[col.key].iloc[1]:
        return
    a, b = values[best][col.key], values[second][col.key]
    common = [v for v in a.index if v in b.index]
    p = paired_test(a.loc[common].to_numpy(float), b.loc[common].to_numpy(float)) \
        if common else math.nan
    index = table.index[table["method"] == best][0]
    table.loc[index, f"{col.key}_p"] = p
    table.loc[index, f"{col.key}_sig"] = bool(p < ALPHA)


def robustness_table(results: Results) -> pd.DataFrame:
    """W-PSNR and W-SSIM per method x attack setting (``attack_params``).

    Columns: ``method``, ``attack``, ``attack_params``, ``strength``, ``attack_bpp`` (mean
    over videos, only when the rows have that column), ``n_videos`` (videos with a non-error
    row), ``errors`` (error rows), and per metric ``KEY``, ``KEY_lo``, ``KEY_hi``, ``KEY_n``,
    ``KEY_na`` (the metric does not apply to any of the setting's rows).
    Attacks in order of first appearance, settings by strength.
    """
    rows = prepare_rows(results.rows)
    has_bpp = BPP in rows.columns
    records = []
    for method in _in_order(rows["method"]):
        mine = rows[rows["method"] == method]
        for attack in _in_order(rows["attack"]):
            theirs = mine[mine["attack"] == attack]
            settings = []
            for params in _in_order(theirs["attack_params"]):
                group = theirs[theirs["attack_params"] == params]
                strengths = group["strength"].dropna()
                settings.append((params, float(strengths.iloc[0]) if len(strengths) else math.nan,
                                 group))
            settings.sort(key=lambda s: (math.isnan(s[1]), 0.0 if math.isnan(s[1]) else s[1]))
            for params, strength, group in settings:
                ok = group[group["status"] != "error"]
                record = {"method": method, "attack": attack, "attack_params": params,
                          "strength": strength, "n_videos": int(ok["video_id"].nunique()),
                          "errors": int((group["status"] == "error").sum())}
                if has_bpp:
                    bpp = ok[BPP].dropna()
                    record[BPP] = float(bpp.mean()) if len(bpp) else math.nan
                for metric in ROBUSTNESS_METRICS:
                    summary = _summary(per_video(group, metric))
                    record[metric] = summary["mean"]
                    record[f"{metric}_lo"] = summary["lo"]
                    record[f"{metric}_hi"] = summary["hi"]
                    record[f"{metric}_n"] = summary["n"]
                    record[f"{metric}_na"] = not_applicable(ok, metric)
                records.append(record)
    columns = ["method", "attack", "attack_params", "strength", *([BPP] if has_bpp else []),
               "n_videos", "errors"]
    for metric in ROBUSTNESS_METRICS:
        columns += [metric, f"{metric}_lo", f"{metric}_hi", f"{metric}_n", f"{metric}_na"]
    return pd.DataFrame.from_records(records, columns=columns)


def attack_family(attack: str) -> str:
    """The ``family`` of a registered attack (``chain`` for chains); ``other`` for one that
    is not registered here."""
    try:
        return str(getattr(registry.get("attacks", attack), "family", "other") or "other")
    except BenchError:
        return "other"


def _default_setting(attack: str) -> str | None:
    """The canonical name of a registered attack's default setting (its first grid point),
    or None (not registered, or no grid: a chain is the settings it is given with)."""
    try:
        cls = registry.get("attacks", attack)
        grid = cls.grid()
        return cls(grid[0]).canonical if grid else None
    except Exception:  # a plugin that cannot be built here: fall back to the run's order
        return None


def heatmap_settings(rows: pd.DataFrame) -> list[str]:
    """The heat map's columns (``attack_params``), attacks in run order: an attack's default
    setting when the run has it, else its first setting in the run; every chain as given."""
    out: list[str] = []
    for attack in _in_order(rows["attack"]):
        params = _in_order(rows.loc[rows["attack"] == attack, "attack_params"])
        default = _default_setting(attack)
        if default is None and attack_family(attack) == "chain":
            out.extend(params)
        else:
            out.append(default if default in params else params[0])
    return out


def absent_reason(group: pd.DataFrame, metric: str = HEATMAP_METRIC) -> str:
    """Why ``group`` (rows of one method) has no ``metric`` value: ``not run``, the error of
    its error rows, or the reason its ``unavailable`` rows give (a missing checkpoint, ...)."""
    if group.empty:
        return "not run"
    errors = group[group["status"] == "error"]
    if len(errors) == len(group):
        return "error: " + (str(errors["error"].iloc[0]) or "(no message)")
    reasons = metric_reasons(group)
    return "; ".join(reasons.get(metric, []) or reasons.get("", [])) or f"no {metric} value"


def _absent_text(missing: dict[str, str], settings: int) -> str:
    """The ``absent`` cell of a heat map row: ``reason`` when every setting lacks a value for
    one reason, else ``setting, setting: reason; ...``."""
    grouped: dict[str, list[str]] = {}
    for params, reason in missing.items():
        grouped.setdefault(reason, []).append(params)
    if len(grouped) == 1 and len(missing) == settings:
        return next(iter(grouped))
    return "; ".join(f"{', '.join(params)}: {reason}" for reason, params in grouped.items())


def heatmap_table(results: Results, robustness: pd.DataFrame | None = None) -> pd.DataFrame:
    """The robustness heat map as a table: one row per method (run order), ``method``, one
    column per setting of ``heatmap_settings`` holding the mean W-PSNR over videos (NaN when
    the method has no value there: never a number in its place) and ``absent`` (why cells
    are empty; empty when none is)."""
    rows = prepare_rows(results.rows)
    robustness = robustness if robustness is not None else robustness_table(results)
    settings = heatmap_settings(rows)
    records = []
    for method in _in_order(rows["method"]):
        mine = robustness[robustness["method"] == method].set_index("attack_params")
        record: dict = {"method": method}
        missing = {}
        for params in settings:
            value = math.nan
            if params in mine.index and int(mine.loc[params, f"{HEATMAP_METRIC}_n"]) > 0:
                value = float(mine.loc[params, HEATMAP_METRIC])
            record[params] = value
            if not math.isfinite(value):
                group = rows[(rows["method"] == method) & (rows["attack_params"] == params)]
                missing[params] = absent_reason(group)
        record["absent"] = _absent_text(missing, len(settings))
        records.append(record)
    return pd.DataFrame.from_records(records, columns=["method", *settings, "absent"])


def heatmap_markdown(table: pd.DataFrame) -> str:
    """The heat map table in markdown: numbers to 2 decimals, ``–`` where absent."""
    settings = [c for c in table.columns if c not in ("method", "absent")]
    body = []
    for _, row in table.iterrows():
        cells = [MISSING if not math.isfinite(row[p]) else format_number(row[p], 2)
                 for p in settings]
        body.append([row["method"], *cells])
    return tabulate(body, headers=["method", *settings], tablefmt="github",
                    disable_numparse=True)


def _family_order(families) -> list[str]:
    known = [f for f in FAMILY_ORDER if f in families]
    return known + sorted(f for f in families if f not in FAMILY_ORDER)


def _has_point(table: pd.DataFrame, x: str) -> bool:
    """Whether ``table`` (robustness rows) has a point to draw: finite ``x`` and W-PSNR."""
    xs = pd.to_numeric(table[x], errors="coerce").to_numpy(float)
    ys = pd.to_numeric(table[HEATMAP_METRIC], errors="coerce").to_numpy(float)
    return bool((np.isfinite(xs) & np.isfinite(ys)).any())


def family_curves(results: Results, robustness: pd.DataFrame, out_dir: Path
                  ) -> tuple[list[Path], list[str]]:
    """``robustness_family_<family>.png`` per family with an attack of numeric strength
    (bits per pixel for codec attacks when the rows have ``attack_bpp``): (paths, families
    left out for lack of numeric strengths). Methods without a value in a family are drawn
    as absent, with the reason, in its legend; the Safe-Sora ablation variants are not drawn
    (``robustness_ablation.png`` has them)."""
    if robustness.empty:
        return [], []
    rows = prepare_rows(results.rows)
    methods, _ = split_variants(_in_order(rows["method"]))
    by_family: dict[str, list[str]] = {}
    for attack in _in_order(robustness["attack"]):
        by_family.setdefault(attack_family(attack), []).append(attack)
    paths, skipped = [], []
    for family in _family_order(by_family):
        attacks, x_columns = [], {}
        for attack in by_family[family]:
            mine = robustness[robustness["attack"] == attack]
            x = "strength"
            if family == "codec" and BPP in mine.columns and np.isfinite(
                    pd.to_numeric(mine[BPP], errors="coerce")).any():
                x = BPP
            if np.isfinite(pd.to_numeric(mine[x], errors="coerce")).any():
                attacks.append(attack)
                x_columns[attack] = x
        if not attacks:
            skipped.append(family)
            continue
        table = robustness[robustness["attack"].isin(attacks)]
        available, absent = [], {}
        for method in methods:
            mine = table[table["method"] == method]
            if any(_has_point(mine[mine["attack"] == a], x_columns[a]) for a in attacks):
                available.append(method)
            else:
                theirs = rows[(rows["method"] == method) & rows["attack"].isin(attacks)]
                absent[method] = absent_reason(theirs)
        paths.extend(plots.family_figures(table, family, attacks, available, out_dir,
                                          x_columns, absent))
    return paths, skipped


def error_summary(rows: pd.DataFrame) -> tuple[int, list[tuple[str, int, str]]]:
    """(number of error rows, [(message, count, example 'method / video / attack')]) with
    the most frequent messages first."""
    errors = rows[rows["status"].astype(str) == "error"]
    counts = Counter(str(e) or "(no message)" for e in errors["error"])
    listed = []
    for message, count in counts.most_common():
        first = errors[errors["error"].astype(str).replace("", "(no message)") == message]
        example = first.iloc[0]
        listed.append((message, count,
                       f"{example['method']} / {example['video_id']} / {example['attack_params']}"))
    return len(errors), listed


# --------------------------------------------------------------------------- formatting


def table1_markdown(table: pd.DataFrame) -> str:
    """Table 1 as a markdown table: measured cells and, where any method is in the paper,
    a ``paper`` column after each metric."""
    columns = table1_columns(table.columns)
    with_paper = any(np.isfinite(table[f"paper_{c.key}"].astype(float)).any()
                     for c in columns) if not table.empty else False
    headers = ["method", "version", "n"]
    for col in columns:
        headers.append(col.label)
        if with_paper:
            headers.append("paper")
    body = []
    for _, row in table.iterrows():
        line = [row["method"], row["method_version"], int(row["n_videos"])]
        for col in columns:
            mark = MARK if bool(row[f"{col.key}_sig"]) else ""
            line.append(format_cell(row[col.key], row[f"{col.key}_lo"], row[f"{col.key}_hi"],
                                    int(row[f"{col.key}_n"]), int(row["n_videos"]), mark))
            if with_paper:
                paper = row[f"paper_{col.key}"]
                line.append(MISSING if math.isnan(paper) else format_number(paper))
        body.append(line)
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def robustness_markdown(table: pd.DataFrame) -> str:
    headers = ["method", "attack", "strength", "n", "errors"]
    headers += [metrics.by_column(m).spec.name.upper() + (" (dB)" if m == "w_psnr" else "")
                for m in ROBUSTNESS_METRICS]
    body = []
    for _, row in table.iterrows():
        strength = "" if math.isnan(row["strength"]) else f"{row['strength']:g}"
        line = [row["method"], row["attack_params"], strength, int(row["n_videos"]),
                int(row["errors"])]
        for metric in ROBUSTNESS_METRICS:
            if bool(row.get(f"{metric}_na", False)) and int(row[f"{metric}_n"]) == 0:
                line.append(NOT_APPLICABLE)
                continue
            line.append(format_cell(row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"],
                                    int(row[f"{metric}_n"]), int(row["n_videos"])))
        body.append(line)
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


TABLE1_LEGEND = (
    "Cells: mean over videos [95% percentile-bootstrap CI over videos]; `(n=k)` when a metric "
    "has values for fewer videos than the method's n. W-PSNR and W-SSIM are measured after the "
    "identity attack; tLP is shown x100 (the paper's scale; results store it raw); FVD is one "
    "value per set (I3D Kinetics-400 logits, watermarked set vs cover set), its CI from "
    "resampling videos (cover/watermarked pairs together); n is its number of videos. "
    f"{MARK}: the best method beats the runner-up by a paired Wilcoxon "
    f"signed-rank test over videos, p < {ALPHA} (needs at least 6 videos). `paper`: Safe-Sora "
    "(NeurIPS 2025) Table 1, VideoCrafter2 at 320x512, 100 prompts: a different setting, "
    "shown for orientation only.")


ROBUSTNESS_LEGEND = (
    "W-PSNR and W-SSIM of the recovered logo after each attack setting: mean over videos "
    "[95% bootstrap CI]. PATCH-ACC: fraction of logo patches placed back at their own "
    f"position; {NOT_APPLICABLE} for methods that report no patch positions "
    f"({metrics.NO_POSITIONS_REASON}).")


HEATMAP_LEGEND = (
    "Mean W-PSNR (dB) over videos per method (rows) and attack (columns): each attack at its "
    "default setting (the first point of its grid: the paper's setting for the paper's six), "
    "each chain as given. `–`: no value, never a number in its place; `robustness_heatmap.csv` "
    "gives the values and, in `absent`, why a method has none (a missing checkpoint, error "
    "rows, not run).")

ABLATION_FIGURE_LEGEND = (
    "W-PSNR vs strength of the full model and its ablation variants under the paper's "
    "attacks, with 95% CI bands; the variants are drawn here only, not among the methods.")

FAMILY_LEGEND = (
    "W-PSNR vs strength per attack family (bits per pixel for codec attacks when the rows "
    "record `attack_bpp`), one axes per attack with numeric strengths, one line per method "
    f"with its 95% CI band; at most {plots.MAX_LINES} methods a figure (more: further pages "
    "`_2`, `_3`, ... each saying which methods it holds). Methods without values are listed "
    "as absent in the legend, with the reason; the Safe-Sora ablation variants are in the "
    "ablation's figure.")


# --------------------------------------------------------------------------- figures


def _load_samples(results: Results) -> tuple[dict[tuple[str, str], dict], list[str]]:
    """{(method, attack canonical): arrays} of every readable sample, and read problems."""
    samples: dict[tuple[str, str], dict] = {}
    problems = []
    for path in results.samples():
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            method, attack = str(arrays.pop("method")), str(arrays.pop("attack"))
        except Exception as exc:  # a damaged sample costs its figure, not the report
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        samples[(method, attack)] = arrays
    return samples, problems


def _sample_attacks(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, canonical) of the identity attack and the h264 default (the first h264
    setting of the run: the grid lists the paper's setting first), where present."""
    out = []
    for name in (IDENTITY, H264):
        params = _in_order(rows.loc[rows["attack"].astype(str) == name, "attack_params"])
        if params:
            out.append((params[0], params[0]))
    return out


def robustness_figures(robustness: pd.DataFrame, out_dir: Path
                       ) -> tuple[list[Path], Path | None]:
    """``robustness_<attack>.png`` per attack with numeric strengths and
    ``robustness_grid.png`` (the paper's attacks), without the Safe-Sora ablation variants;
    ``robustness_ablation.png`` (the paper's attacks, the full model and its variants) when
    the run has variants. Returns (the per-attack and grid PNGs, the ablation PNG or None)."""
    attacks = plots.numeric_attacks(robustness) if not robustness.empty else []
    methods, variants = split_variants(_in_order(robustness["method"]))
    pngs = []
    for attack in attacks:
        path = out_dir / f"robustness_{plots.safe_name(attack)}.png"
        pngs.append(plots.robustness_figure(robustness, attack, path, methods=methods))
    paper = [a for a in attacks if attack_family(a) == registry.PAPER_FAMILY]
    if paper:  # the paper's attacks side by side; the others in their family figures
        pngs.append(plots.robustness_grid(robustness, paper, out_dir / "robustness_grid.png",
                                          methods=methods))
    ablation = None
    if variants and paper:
        ablation = plots.ablation_figure(robustness, paper, variants,
                                         out_dir / "robustness_ablation.png")
    return pngs, ablation


def build_figures(results: Results, robustness: pd.DataFrame, out_dir: Path
                  ) -> tuple[list[Path], Path | None, list[Path], list[str]]:
    """(robustness PNGs, the ablation variants' PNG or None, sample strip PNGs, problems)."""
    robustness_pngs, ablation_png = robustness_figures(robustness, out_dir)
    samples, problems = _load_samples(results)
    wanted = _sample_attacks(results.rows)
    strips = []
    for method in _in_order(results.rows["method"]):
        chosen = [(label, samples[(method, canonical)]) for label, canonical in wanted
                  if (method, canonical) in samples]
        if chosen:
            path = out_dir / f"samples_{plots.safe_name(method)}.png"
            strips.append(plots.sample_strip(method, chosen, path))
    return robustness_pngs, ablation_png, strips, problems


# --------------------------------------------------------------------------- the report


def _checkpoint(manifest: dict, method: str) -> str:
    """``, weights abcdef012345`` when the manifest records a checkpoint hash."""
    entry = (manifest.get("methods") or {}).get(method)
    digest = entry.get("sha256") if isinstance(entry, dict) else None
    return f", weights {str(digest)[:12]}" if digest else ""


def _manifest_summary(results: Results, rows: pd.DataFrame) -> str:
    manifest = results.manifest or {}
    profile = manifest.get("profile", "unknown")
    if isinstance(profile, dict):
        profile = profile.get("name", "unknown")
    started = manifest.get("started") or manifest.get("date") or "unknown"
    versions = {}
    for method in _in_order(rows["method"]):
        versions[method] = ",".join(_in_order(rows.loc[rows["method"] == method,
                                                       "method_version"]))
    info = [
        ["results", str(results.path)],
        ["profile", str(profile)],
        ["git", str(manifest.get("git", "unknown"))],
        ["date", str(started)],
        ["device", str(manifest.get("device", "unknown"))],
        ["videos", str(rows["video_id"].nunique())],
        ["rows", str(len(rows))],
        ["methods", ", ".join(f"{m} (v{v}{_checkpoint(manifest, m)})"
                              for m, v in versions.items()) or "none"],
        ["attack settings", _attack_summary(rows)],
    ]
    return tabulate(info, headers=["run", ""], tablefmt="github", disable_numparse=True)


def _notes_markdown(notes: Notes, table: pd.DataFrame) -> str:
    if table.empty:
        return "No methods in the results."
    if not notes.unavailable:
        return "Every metric has values for every method."
    labels = {c.key: c.label for c in table1_columns(table.columns)}
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (reason, methods) -> metrics
    for key, reasons in notes.unavailable.items():
        for reason, methods in reasons.items():
            grouped.setdefault((reason, tuple(sorted(methods))), []).append(labels.get(key, key))
    return "\n".join(f"- **{', '.join(keys)}** unavailable for {', '.join(methods)}: {reason}"
                     for (reason, methods), keys in grouped.items())


def _errors_markdown(rows: pd.DataFrame) -> str:
    count, listed = error_summary(rows)
    if count == 0:
        return "No error rows."
    lines = [f"{count} error row(s) of {len(rows)}; first messages:", ""]
    for message, n, example in listed[:MAX_ERRORS_LISTED]:
        lines.append(f"- {n} x `{message}` (e.g. {example})")
    if len(listed) > MAX_ERRORS_LISTED:
        lines.append(f"- ... and {len(listed) - MAX_ERRORS_LISTED} other message(s)")
    return "\n".join(lines)


def _partial_markdown(problems: list[str]) -> list[str]:
    """The banner of a report built from an unfinished or inconsistent results folder."""
    if not problems:
        return []
    return ["> **Partial results**: this report was built with --allow-partial from a results "
            "folder that is not one finished run; its means are over the rows present only.",
            ">", *[f"> - {p}" for p in problems], ""]


def build_report(results_dir: str | Path, out_dir: str | Path,
                 allow_partial: bool = False) -> list[Path]:
    """Write the report of ``results_dir`` into ``out_dir``; return the paths written.

    An unfinished or inconsistent results folder (``bench.core.results.incomplete``) raises
    BenchError unless ``allow_partial``; then rows of unknown status (a cut last line) are
    left out and the report says it is partial, and why."""
    results = load_results(results_dir)
    incomplete = require_complete(results, allow_partial)
    if incomplete:
        results = Results(results.path, usable_rows(results.rows), results.sets,
                          results.manifest, results.truncated)
    out = usable_folder(out_dir, "report folder")
    notes = Notes()
    table1 = quality_table(results, notes)
    robustness = robustness_table(results)
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        path = out / name
        try:
            path.write_text(text)
        except OSError as exc:
            raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from exc
        written.append(path)

    write("table1.csv", table1.to_csv(index=False))
    table1_md = table1_markdown(table1)
    partial = "".join(f"{line}\n" for line in _partial_markdown(incomplete))
    write("table1.md", f"# Table 1: watermark fidelity and video quality\n\n{partial}"
                       f"{TABLE1_LEGEND}\n\n{table1_md}\n")
    write("robustness.csv", robustness.to_csv(index=False))
    robustness_md = robustness_markdown(robustness)
    robustness_legend = ROBUSTNESS_LEGEND
    write("robustness.md", f"# Robustness\n\n{robustness_legend}\n\n{robustness_md}\n")

    rows = prepare_rows(results.rows)
    ablation = ablation_table(table1, rows, (results.manifest or {}).get("training"))
    write("ablation.csv", ablation.to_csv(index=False))
    if ablation["in_run"].any():
        ablation_md = f"{ABLATION_LEGEND}\n\n{ablation_markdown(ablation)}"
    else:
        ablation_md = "No Safe-Sora variant in this run."

    training = training_table(results)
    write("training.csv", training.to_csv(index=False))
    training_md = training_markdown(training)
    curves = curves_table((results.manifest or {}).get("training"))
    write("training_curves.csv", curves.to_csv(index=False))
    curves_png = curves_figure(curves, out / "training_curves.png")
    if curves_png is not None:
        written.append(curves_png)
        training_md += f"\n\n{CURVES_LEGEND}\n\n![training curves]({curves_png.name})"

    robustness_pngs, ablation_png, strips, problems = build_figures(results, robustness, out)
    written.extend(robustness_pngs + strips + ([ablation_png] if ablation_png else []))
    if ablation_png is not None:
        ablation_md += (f"\n\n{ABLATION_FIGURE_LEGEND}\n\n"
                        f"![{ablation_png.stem}]({ablation_png.name})")
    heatmap = heatmap_table(results, robustness)
    write("robustness_heatmap.csv", heatmap.to_csv(index=False))
    heat_values = heatmap.set_index("method").drop(columns="absent").astype(float)
    heat_absent = {m: a for m, a in zip(heatmap["method"], heatmap["absent"], strict=True) if a}
    heatmap_png = plots.heatmap_figure(heat_values, out / "robustness_heatmap.png", heat_absent)
    written.append(heatmap_png)
    family_pngs, no_curves = family_curves(results, robustness, out)
    written.extend(family_pngs)

    parts = [
        "# safesora-bench report", "", *_partial_markdown(incomplete),
        _manifest_summary(results, rows), "",
        "## Table 1: watermark fidelity and video quality", "", TABLE1_LEGEND, "", table1_md, "",
        "### Notes", "", _notes_markdown(notes, table1), "",
        "### Errors", "", _errors_markdown(rows), "",
        "## Robustness", "", robustness_legend, "", robustness_md, "",
    ]
    tail = ["## Ablation (Safe-Sora variants)", "", ablation_md, "",
            "## Training summary", "", TRAINING_LEGEND, "", training_md, "",
            "## Where the time goes", "", TIMINGS_LEGEND, "",
            timings_markdown(results.manifest or {}), ""]
    write("timings.csv", pd.DataFrame.from_records(
        timings_table(results.manifest or {}),
        columns=["stage", "seconds", "calls", "share"]).to_csv(index=False))
    if robustness_pngs:
        parts += ["### W-PSNR vs attack strength", ""]
        parts += [f"![{p.stem}]({p.name})" for p in robustness_pngs] + [""]
    else:
        parts += ["No attack with numeric strengths: no robustness plots.", ""]
    parts += ["### Robustness heat map", "", HEATMAP_LEGEND, "",
              f"![{heatmap_png.stem}]({heatmap_png.name})", "", heatmap_markdown(heatmap), ""]
    if heat_absent:
        parts += [f"- **{m}** absent: {reason}" for m, reason in heat_absent.items()] + [""]
    parts += ["### W-PSNR per attack family", "", FAMILY_LEGEND, ""]
    parts += [f"![{p.stem}]({p.name})" for p in family_pngs] + [""]
    if no_curves:
        parts += [f"No curves for the {', '.join(no_curves)} famil"
                  f"{'y' if len(no_curves) == 1 else 'ies'}: no attack there has a numeric "
                  "strength.", ""]
    if strips:
        parts += ["## Samples", "",
                  "Cover, watermarked, |watermarked - cover| x10 (clipped), attacked frame, "
                  "embedded and recovered logo; identity attack and the H.264 default.", ""]
        parts += [f"![{p.stem}]({p.name})" for p in strips] + [""]
    if problems:
        parts += ["Unreadable samples:", ""] + [f"- {p}" for p in problems] + [""]
    write("README.md", "\n".join(parts + tail))
    return written


__all__ = ["absent_reason", "attack_family", "build_report", "error_summary", "family_curves",
           "format_cell", "heatmap_settings", "heatmap_table", "metric_reasons", "quality_table",
           "robustness_table", "table1_markdown"]
