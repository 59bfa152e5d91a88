"""``bench gate``: fail on a regression or a new failure against a committed reference run.

Thresholds file (TOML)::

    reference = "tiny"      # folder of a reference run, relative to this file (optional)
    [defaults]
    tolerance = 0.5         # allowed worsening of a mean vs the reference, metric units
    [[check]]
    method = "dct-qim"
    attack = "identity"     # attack registry name (all its settings) or canonical string
    metric = "w_psnr"
    floor = 20.0            # optional absolute bound (a ceiling when lower is better)
    tolerance = 1.0         # optional, overrides defaults

``SCHEMA`` declares these keys (types, required ones) per table; ``validate_table`` checks a
table against it, and an error names the file, the line (found by ``bench.core.toml_lines``) and
the problem: ``gate.toml:14: [[check]] #2: unknown key 'tolerence'; did you mean
'tolerance'?``.

A check's value is the mean of ``metric`` over the selected non-error rows (set-level metrics
such as FVD: the mean of the matching ``sets.csv`` values). Direction comes from the metric's
``higher_is_better``. A changed method, attack or metric version makes the comparison with
the reference "not comparable" (reported, not a failure); the floor still applies. Any error
row whose (video_id, method, attack_params) was not an error in the reference fails the gate.

Only whole runs over the same videos are compared: an unfinished or inconsistent results folder
(bench.core.results.incomplete), or a candidate and reference over different video sets, is refused
(exit 2) unless ``allow_partial``; then the means are taken over the videos both runs hold, and
set-level checks (computed over each run's whole set) are not comparable.
Exit status: 0 pass, 1 regression or new error, 2 malformed thresholds, missing files, or
results that are not comparable as a whole.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
from tabulate import tabulate

from bench import metrics
from bench.core.api import BenchError
from bench.core.results import (
    Results,
    load_results,
    require_complete,
    usable_rows,
    version_text,
)
from bench.core.toml_lines import TomlLines

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib

DEFAULT_TOLERANCE = 0.0
MAX_ERRORS_LISTED = 10

PASS, FAIL, NOT_COMPARABLE = 0, 1, 2


class ThresholdsError(BenchError):
    """The thresholds file cannot be used (exit status 2)."""


@dataclass(frozen=True)
class Check:
    method: str
    attack: str
    metric: metrics.Metric
    floor: Optional[float]
    tolerance: float


@dataclass(frozen=True)
class Thresholds:
    path: Path
    reference: Optional[Path]
    checks: list[Check]


@dataclass
class Outcome:
    """One check's result: ``status`` is PASS, FAIL or NOT_COMPARABLE."""

    check: Check
    value: float
    reference: float
    bound: float
    status: int
    verdict: str


# --------------------------------------------------------------------------- the thresholds file

@dataclass(frozen=True)
class Key:
    """One allowed key of a thresholds table: its type (a name in ``TYPES``), and whether
    every table must have it."""

    type: str
    required: bool = False


@dataclass(frozen=True)
class Table:
    """One table of a thresholds file: its name in messages, its TOML key (None: the top
    level), whether it is an array of tables, and its allowed keys."""

    label: str
    name: Optional[str]
    array: bool
    keys: dict[str, Key]


TOP = Table("top level", None, False, {
    "reference": Key("folder"), "defaults": Key("table"), "check": Key("tables")})
DEFAULTS = Table("[defaults]", "defaults", False, {"tolerance": Key("tolerance")})
CHECK = Table("[[check]]", "check", True, {
    "method": Key("text", required=True), "attack": Key("text", required=True),
    "metric": Key("metric", required=True), "floor": Key("number"),
    "tolerance": Key("tolerance")})
SCHEMA = (TOP, DEFAULTS, CHECK)


def _number_problem(value) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    return None if math.isfinite(value) else f"must be finite, got {value!r}"


def _tolerance_problem(value) -> Optional[str]:
    problem = _number_problem(value)
    return problem or (f"must be >= 0, got {value!r}" if value < 0 else None)


def _text_problem(value, what: str = "a non-empty string") -> Optional[str]:
    ok = isinstance(value, str) and value.strip()
    return None if ok else f"must be {what}, got {value!r}"


def _metric_problem(value) -> Optional[str]:
    problem = _text_problem(value)
    if problem is None:
        try:
            metrics.by_column(value)
        except BenchError as exc:
            return str(exc)
    return problem


def _is_table_array(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


# type name -> f(value) -> what is wrong with it, or None
TYPES: dict[str, Callable[[object], Optional[str]]] = {
    "text": _text_problem,
    "folder": lambda v: _text_problem(v, "a folder name (a non-empty string)"),
    "number": _number_problem,
    "tolerance": _tolerance_problem,
    "metric": _metric_problem,
    "table": lambda v: None if isinstance(v, dict) else f"must be a table, got {v!r}",
    "tables": lambda v: None if _is_table_array(v) else f"must be an array of tables, "
                                                        f"got {v!r}",
}


def _error(path: Path, line: Optional[int], where: str, problem: str) -> ThresholdsError:
    at = f"{path}:{line}" if line else str(path)
    return ThresholdsError(f"{at}: {where}: {problem}")


def validate_table(values: dict, table: Table, path: Path, lines: TomlLines,
                   index: Optional[int] = None) -> None:
    """Check one table of a thresholds file (entry ``index`` of an array) against its
    schema: unknown keys (with a suggestion), missing required keys, then each value's
    type. ThresholdsError naming the file, the line and the problem."""
    where = table.label if index is None else f"{table.label} #{index + 1}"
    known = tuple(table.keys)

    def fail(line: Optional[int], problem: str) -> ThresholdsError:
        return _error(path, line, where, problem)

    for key in values:
        if key not in table.keys:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise fail(lines.key(table.name, key, index),
                       f"unknown key {key!r}{hint} (known: {', '.join(known)})")
    for key, spec in table.keys.items():
        if spec.required and key not in values:
            raise fail(lines.table(table.name, index), f"missing {key!r}")
    for key, spec in table.keys.items():
        problem = TYPES[spec.type](values[key]) if key in values else None
        if problem:
            raise fail(lines.key(table.name, key, index), f"{key}: {problem}")


def load_thresholds(path: str | Path) -> Thresholds:
    """Parse and validate a thresholds file (``SCHEMA``); any problem raises
    ThresholdsError."""
    path = Path(path)
    if not path.is_file():
        raise ThresholdsError(f"thresholds file {path} not found")
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ThresholdsError(f"{path}: not valid TOML: {exc}") from exc
    lines = TomlLines(text, data)
    validate_table(data, TOP, path, lines)
    for table in (DEFAULTS, CHECK):
        if table.array:
            for index, values in enumerate(data.get(table.name, [])):
                validate_table(values, table, path, lines, index)
        else:
            validate_table(data.get(table.name, {}), table, path, lines)
    defaults, raw_checks = data.get("defaults", {}), data.get("check", [])
    reference = (path.parent / data["reference"]).resolve() if "reference" in data else None
    default_tol = float(defaults.get("tolerance", DEFAULT_TOLERANCE))
    checks = [Check(raw["method"], raw["attack"], metrics.by_column(raw["metric"]),
                    float(raw["floor"]) if "floor" in raw else None,
                    float(raw.get("tolerance", default_tol)))
              for raw in raw_checks]
    return Thresholds(path, reference, checks)


# --------------------------------------------------------------------------- evaluation


@dataclass
class Selection:
    value: float
    method_versions: set[str]
    attack_versions: set[str]
    present: bool
    reason: str = ""


def _versions(column: pd.Series) -> set[str]:
    """Distinct non-blank versions of a column, as text."""
    return {version_text(v) for v in column.dropna()}


def _match_attack(frame: pd.DataFrame, attack: str) -> pd.Series:
    """Rows of a canonical string (``blur(k=5)``) if any match it, else of a registry name."""
    exact = frame["attack_params"].astype(str) == attack
    return exact if exact.any() else frame["attack"].astype(str) == attack


def select(results: Results, check: Check) -> Selection:
    """The check's value in one run, and the versions it was measured with."""
    if check.metric.level == "set":
        sets = results.sets
        if sets.empty:
            return Selection(math.nan, set(), set(), False)
        mine = sets[(sets["method"].astype(str) == check.method)
                    & (sets["metric"].astype(str) == check.metric.column)]
        mine = mine[_match_attack(mine, check.attack)] if not mine.empty else mine
        values = pd.to_numeric(mine["value"], errors="coerce").dropna()
        reasons = "; ".join(dict.fromkeys(str(r) for r in mine.get("reason", []) if str(r)
                                          and str(r) != "nan"))
        return Selection(float(values.mean()) if len(values) else math.nan,
                         _versions(mine["method_version"]), set(), not mine.empty,
                         reasons)
    rows = results.rows
    mine = rows[rows["method"].astype(str) == check.method]
    mine = mine[_match_attack(mine, check.attack)] if not mine.empty else mine
    usable = mine[mine["status"].astype(str) != "error"]
    values = pd.to_numeric(usable[check.metric.column], errors="coerce").dropna()
    reason = ""
    if values.empty and not mine.empty:
        texts = [str(e) for e in mine["error"] if str(e)]
        reason = texts[0] if texts else "no value in any row"
    return Selection(float(values.mean()) if len(values) else math.nan,
                     _versions(mine["method_version"]), _versions(mine["attack_version"]),
                     not mine.empty, reason)


def _metric_version(results: Results, column: str) -> Optional[str]:
    versions = (results.manifest or {}).get("metrics") or {}
    return str(versions[column]) if column in versions else None


def _version_changes(check: Check, candidate: Results, cand: Selection,
                     reference: Results, ref: Selection) -> list[str]:
    changes = []
    if cand.method_versions != ref.method_versions:
        changes.append(f"method version {','.join(sorted(ref.method_versions))} -> "
                       f"{','.join(sorted(cand.method_versions))}")
    if cand.attack_versions != ref.attack_versions:
        changes.append(f"attack version {','.join(sorted(ref.attack_versions))} -> "
                       f"{','.join(sorted(cand.attack_versions))}")
    old = _metric_version(reference, check.metric.column)
    new = _metric_version(candidate, check.metric.column)
    if old is not None and new is not None and old != new:
        changes.append(f"metric version {old} -> {new}")
    return changes


def evaluate(check: Check, candidate: Results, reference: Optional[Results],
             same_videos: bool = True) -> Outcome:
    """Apply one check: presence, floor, then the tolerance against the reference.

    ``same_videos`` False (the runs cover different videos, rows cut to the common ones) makes
    a set-level check not comparable."""
    higher = check.metric.higher_is_better
    cand = select(candidate, check)
    ref = select(reference, check) if reference is not None else None
    ref_value = ref.value if ref is not None else math.nan
    bounds = []
    if check.floor is not None:
        bounds.append(check.floor)
    comparable = ref is not None and ref.present and not math.isnan(ref_value)
    changes = _version_changes(check, candidate, cand, reference, ref) if comparable else []
    if comparable and not same_videos and check.metric.level == "set":
        changes.append("the runs cover different videos")
    if comparable and not changes:
        bounds.append(ref_value - check.tolerance if higher else ref_value + check.tolerance)
    bound = (max(bounds) if higher else min(bounds)) if bounds else math.nan

    def outcome(status: int, verdict: str) -> Outcome:
        return Outcome(check, cand.value, ref_value, bound, status, verdict)

    if not cand.present:
        return outcome(FAIL, "FAIL: method/attack absent from the candidate")
    if math.isnan(cand.value):
        return outcome(FAIL, f"FAIL: no value ({cand.reason or 'all rows are errors'})")
    worse = (lambda v, b: v < b) if higher else (lambda v, b: v > b)
    if check.floor is not None and worse(cand.value, check.floor):
        side = "below the floor" if higher else "above the ceiling"
        return outcome(FAIL, f"FAIL: {side} {check.floor:g}")
    if changes:
        return outcome(NOT_COMPARABLE, "not comparable: " + "; ".join(changes))
    if not comparable:
        why = "no reference run" if reference is None else "no reference value"
        return outcome(PASS, f"ok ({why})")
    limit = ref_value - check.tolerance if higher else ref_value + check.tolerance
    if worse(cand.value, limit):
        return outcome(FAIL, f"FAIL: regression beyond tolerance {check.tolerance:g}")
    return outcome(PASS, "ok")


def new_errors(candidate: Results, reference: Optional[Results]) -> pd.DataFrame:
    """Candidate error rows whose (video_id, method, attack_params) was no error before."""
    key = ["video_id", "method", "attack_params"]
    rows = candidate.rows
    errors = rows[rows["status"].astype(str) == "error"]
    if reference is None or errors.empty:
        return errors
    ref = reference.rows
    old = set(map(tuple, ref.loc[ref["status"].astype(str) == "error", key].astype(str)
                  .itertuples(index=False)))
    is_new = [tuple(k) not in old for k in errors[key].astype(str).itertuples(index=False)]
    return errors[is_new]


def _fmt(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.4g}"


def format_outcomes(outcomes: list[Outcome]) -> str:
    body = []
    for o in outcomes:
        direction = ">=" if o.check.metric.higher_is_better else "<="
        bound = "" if math.isnan(o.bound) else f"{direction} {_fmt(o.bound)}"
        body.append([o.check.method, o.check.attack, o.check.metric.column, _fmt(o.value),
                     _fmt(o.reference), bound, o.verdict])
    return tabulate(body, headers=["method", "attack", "metric", "value", "reference", "bound",
                                   "verdict"], tablefmt="simple", disable_numparse=True)


def _videos(results: Results) -> set[str]:
    return set(results.rows["video_id"].astype(str))


def _only(results: Results, videos: set[str]) -> Results:
    """``results`` with the rows of ``videos`` (and of a known status) only."""
    rows = usable_rows(results.rows)
    return Results(results.path, rows[rows["video_id"].astype(str).isin(videos)],
                   results.sets, results.manifest, results.truncated)


def _listed(names: set[str], limit: int = 5) -> str:
    shown = sorted(names)[:limit]
    return ", ".join(shown) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def same_video_set(candidate: Results, reference: Results, allow_partial: bool
                   ) -> tuple[Results, Results, bool]:
    """Both runs over the videos they share; BenchError when they differ (unless
    ``allow_partial``) or share none. Returns (candidate, reference, same videos?)."""
    cand, ref = _videos(candidate), _videos(reference)
    if cand == ref:
        return candidate, reference, True
    text = (f"the candidate covers {len(cand)} video(s), the reference {len(ref)}"
            + (f"; missing from the candidate: {_listed(ref - cand)}" if ref - cand else "")
            + (f"; not in the reference: {_listed(cand - ref)}" if cand - ref else ""))
    common = cand & ref
    if not common:
        raise BenchError(f"{text}: no video in common, nothing to compare")
    if not allow_partial:
        raise BenchError(f"{text}: means over different videos are not comparable; run the "
                         "reference's videos (same source and --limit), or pass "
                         f"--allow-partial to compare over the {len(common)} common one(s)")
    return _only(candidate, common), _only(reference, common), False


def run_gate(results_dir: str | Path, thresholds_path: str | Path,
             out: Callable[[str], None] = print, allow_partial: bool = False) -> int:
    """Check a results folder against a thresholds file; return the exit status (0/1/2).

    See the module docstring for ``allow_partial``."""
    same_videos = True
    try:
        thresholds = load_thresholds(thresholds_path)
        candidate = load_results(results_dir)
        problems = require_complete(candidate, allow_partial)
        reference = None
        if thresholds.reference is not None:
            if not thresholds.reference.is_dir():
                raise ThresholdsError(f"{thresholds.path}: reference folder "
                                      f"{thresholds.reference} not found")
            reference = load_results(thresholds.reference)
            problems += [f"reference: {p}" for p in require_complete(reference, allow_partial)]
            candidate, reference, same_videos = same_video_set(candidate, reference,
                                                               allow_partial)
        if problems:
            candidate = _only(candidate, _videos(candidate))
    except BenchError as exc:
        out(f"gate: error: {exc}")
        return 2
    if problems or not same_videos:
        out("gate: partial (--allow-partial): " + "; ".join(
            problems + ([] if same_videos else ["compared over the videos both runs hold"])))
    outcomes = [evaluate(check, candidate, reference, same_videos)
                for check in thresholds.checks]
    if outcomes:
        out(format_outcomes(outcomes))
    else:
        out("gate: the thresholds file has no [[check]]; only new errors are checked")
    errors = new_errors(candidate, reference)
    if len(errors):
        out(f"gate: {len(errors)} new error row(s):")
        for _, row in errors.head(MAX_ERRORS_LISTED).iterrows():
            out(f"  {row['method']} / {row['video_id']} / {row['attack_params']}: "
                f"{row['error']}")
        if len(errors) > MAX_ERRORS_LISTED:
            out(f"  ... and {len(errors) - MAX_ERRORS_LISTED} more")
    failed = sum(o.status == FAIL for o in outcomes)
    not_comparable = sum(o.status == NOT_COMPARABLE for o in outcomes)
    status = 1 if failed or len(errors) else 0
    out(f"gate: {'FAIL' if status else 'pass'}: {len(outcomes)} check(s), {failed} failed, "
        f"{not_comparable} not comparable, {len(errors)} new error row(s)")
    return status


__all__ = ["Check", "Key", "Outcome", "SCHEMA", "Table", "Thresholds", "ThresholdsError",
           "evaluate", "load_thresholds", "new_errors", "run_gate", "validate_table"]
