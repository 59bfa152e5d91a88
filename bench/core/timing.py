"""Where a run's time goes: seconds and calls per stage, summed over the run.

Stages are names such as ``source`` (rendering or reading a cover clip), ``embed/udh``,
``attack/h264``, ``extract/udh``, ``metrics/video``, ``metrics/logo``, ``i3d``, ``io``
(results files) and ``cache`` (cache reads); counters such as ``rows_computed`` and
``rows_cached`` count units. The manifest stores ``as_dict()``; the report prints it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from tabulate import tabulate


class StageTimes:
    """Accumulated wall seconds and calls per stage, plus plain counters."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` body under ``name`` (counted even when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds)
        self.calls[name] = self.calls.get(name, 0) + int(calls)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(n)

    def raw(self) -> tuple[dict, dict, dict]:
        """``(seconds, calls, counts)``: what ``merge`` takes (from another process)."""
        return dict(self.seconds), dict(self.calls), dict(self.counts)

    def merge(self, raw: tuple[dict, dict, dict]) -> None:
        """Add another StageTimes' ``raw()`` to this one."""
        seconds, calls, counts = raw
        for name, value in seconds.items():
            self.add(name, value, calls.get(name, 0))
        for name, n in counts.items():
            self.count(name, n)

    def as_dict(self) -> dict:
        """``{"stages": {name: {"s": seconds, "calls": n}}, "counts": {...}}``, stages by
        decreasing time."""
        order = sorted(self.seconds, key=lambda k: -self.seconds[k])
        return {"stages": {k: {"s": round(self.seconds[k], 4), "calls": self.calls[k]}
                           for k in order},
                "counts": dict(sorted(self.counts.items()))}


def forward_seconds(timings: dict) -> float:
    """The methods' own forward passes in a manifest's ``timings``: the sum of every
    ``embed/...`` and ``extract/...`` stage, in seconds."""
    stages = (timings or {}).get("stages", {})
    return float(sum(v.get("s", 0.0) for k, v in stages.items()
                     if k.startswith(("embed/", "extract/"))))


TIMINGS_LEGEND = (
    "Wall seconds per stage of the run, summed over the run (one process; stages do not "
    "overlap). `embed/M` and `extract/M`: method M's own forward passes; `attack/A`: applying "
    "attack A; `metrics/*`: scoring; `source`: rendering or reading cover clips; `i3d`: FVD "
    "features; `fvd`: the Frechet distances and their bootstrap; `cache`: cache reads; `io`: "
    "writing rows.csv and the figure samples; `(untimed)`: the wall time no stage covers. "
    "Cached units cost only their cache reads.")


def timings_table(manifest: dict) -> list[dict]:
    """One record per stage of a manifest's ``timings``, by decreasing time: stage, seconds,
    calls, share of the run's wall time (NaN without ``wall_s``), then ``(untimed)``: the
    wall time no stage covers."""
    stages = (manifest.get("timings") or {}).get("stages", {})
    wall = float(manifest.get("wall_s") or float("nan"))
    records = [{"stage": k, "seconds": float(v.get("s", 0.0)), "calls": int(v.get("calls", 0))}
               for k, v in stages.items()]
    records.sort(key=lambda r: -r["seconds"])
    if records and wall == wall:  # what no stage covers: bookkeeping, row assembly, ...
        untimed = wall - sum(r["seconds"] for r in records)
        records.append({"stage": "(untimed)", "seconds": max(untimed, 0.0), "calls": 0})
    for record in records:
        record["share"] = record["seconds"] / wall if wall == wall and wall > 0 \
            else float("nan")
    return records


def timings_markdown(manifest: dict) -> str:
    """The report's "where the time goes" section body."""
    records = timings_table(manifest)
    if not records:
        return "This run's manifest has no per-stage timings (runs before they were recorded)."
    timings = manifest.get("timings") or {}
    counts = timings.get("counts", {})
    wall = manifest.get("wall_s")
    forward = forward_seconds(timings)
    head = [f"wall {wall:.1f} s" if wall else "wall time unknown",
            f"methods' forward passes {forward:.1f} s"
            + (f" (wall / forward = {wall / forward:.2f})" if wall and forward > 0 else ""),
            f"rows computed {counts.get('rows_computed', 0):,}, from the cache "
            f"{counts.get('rows_cached', 0):,}"]
    if manifest.get("peak_rss_mb"):
        head.append(f"peak RSS {manifest['peak_rss_mb']:.0f} MB")
    body = [[r["stage"], f"{r['seconds']:.2f}", r["calls"],
             "" if r["share"] != r["share"] else f"{100 * r['share']:.1f}%"] for r in records]
    return "; ".join(head) + ".\n\n" + tabulate(
        body, headers=["stage", "seconds", "calls", "of wall"], tablefmt="github",
        disable_numparse=True)
