"""``bench run --dry-run``: the size of a run's matrix and an estimate of its cold-cache time.

Nothing is written: the methods and attacks are built and checked as a run would, then the
first cover clip is embedded and extracted once per method, every attack setting is applied
once to it and the row metrics scored once, each method in the precision the run would
use (``--precision``; ``auto`` resolved per method). The estimate multiplies those timings by the
matrix (every setting for the profile's first ``curve_videos`` videos, the first setting of
each attack entry for the others); I3D/FVD and cache I/O are not included. It is a one-clip
measurement, so expect the real run to differ by tens of percent.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from bench import metrics
from bench.core.api import ClipError
from bench.core.precision import autocast
from bench.run.runner import MissingMethod, RunConfig, Runner, as_8bit, score_metrics


def _timed(fn, precision: str = "fp32", device: str = "cpu") -> tuple[float, object]:
    """``(seconds, fn())``, run without autograd in ``precision`` (bench.core.precision)."""
    start = time.perf_counter()
    with torch.no_grad(), autocast(precision, device):
        out = fn()
    return time.perf_counter() - start, out


def plan(config: RunConfig) -> dict:
    """The matrix of ``config`` and per-part timings of one clip (seconds)."""
    with tempfile.TemporaryDirectory() as scratch:
        runner = Runner(dataclasses.replace(config, out=Path(scratch) / "out", cache_dir=None,
                                            progress=False, fvd=False))
        clips = len(runner.source)
        # the runner's own rule: which settings each video gets
        per_video = [runner.attacks_for(i) for i in range(clips)]
        curve = sum(attacks is runner.attacks for attacks in per_video)
        settings = {"curve": len(runner.attacks), "other": len(runner.paper_attacks)}
        per_method = sum(len(attacks) for attacks in per_video)
        methods = [m for m in runner.methods if not isinstance(m, MissingMethod)]
        source_s, first = _timed(lambda: next(iter(runner.source), None))
        timings = {"source": 0.0, "methods": {}, "attacks": {}, "metrics": 0.0}
        if first is not None and not isinstance(first, ClipError):
            timings["source"] = source_s
            clip = as_8bit(first)
            logo = runner._logo_for(0)
            video = clip.frames
            frames, image = clip.frames[None], logo.image[None]
            for method in methods:
                precision = runner.precisions[method.name]
                embed, marked = _timed(lambda m=method: m.embed(frames, image, [clip]),
                                       precision, runner.device)
                video = marked[0].float().clamp(0, 1)
                extract, _ = _timed(lambda m=method, v=video: m.extract(v[None]),
                                    precision, runner.device)
                timings["methods"][method.name] = {"embed": embed, "extract": extract,
                                                   "precision": precision}
            gen = torch.Generator().manual_seed(0)
            for attack in runner.attacks:
                timings["attacks"][attack.canonical], _ = _timed(lambda a=attack: a(video, gen))
            inputs = metrics.video_inputs(video, clip.frames)
            timings["metrics"], _ = _timed(
                lambda: score_metrics(runner.video_metrics, inputs))
    attack_s = sum(timings["attacks"].get(a.canonical, 0.0)
                   for attacks in per_video for a in attacks)
    parts = _estimate_parts(timings, clips, per_method, attack_s)
    return {"clips": clips, "curve_videos": curve, "settings": settings,
            "methods": [m.name for m in runner.methods],
            "unavailable": {m.name: m.reason for m in runner.methods
                            if isinstance(m, MissingMethod)},
            "rows": per_method * len(runner.methods), "rows_per_method": per_method,
            "timings": timings, "estimate_parts_s": parts,
            "estimate_s": sum(parts.values())}


def _estimate_parts(timings: dict, clips: int, rows_per_method: int,
                    attack_s: float) -> dict[str, float]:
    """Seconds for an empty cache, per stage: every clip rendered (``source``), and per method
    every clip embedded and its video metrics scored (``embed``), every row extracted
    (``extract``) and every setting applied (``attacks``; ``attack_s`` per method)."""
    methods = timings["methods"].values()
    return {"extract": sum(rows_per_method * cost["extract"] for cost in methods),
            "attacks": len(timings["methods"]) * attack_s,
            "embed": sum(clips * (cost["embed"] + timings["metrics"]) for cost in methods),
            "source": clips * timings["source"]}


def format_plan(result: dict) -> str:
    """The dry run's report: the matrix, the one-clip timings and the estimate."""
    settings = result["settings"]
    lines = [f"{result['clips']} videos x {len(result['methods'])} methods: "
             f"{result['rows']:,} rows ({result['rows_per_method']:,} per method; every one of "
             f"the {settings['curve']} attack settings for the first {result['curve_videos']} "
             f"videos, {settings['other']} for the others)"]
    for name, reason in result["unavailable"].items():
        lines.append(f"  {name}: unavailable ({reason})")
    t = result["timings"]
    body = [[m, c["precision"], f"{c['embed']:.3f}", f"{c['extract']:.3f}"]
            for m, c in t["methods"].items()]
    if body:
        lines += ["", "one clip, seconds:",
                  tabulate(body, headers=["method", "precision", "embed", "extract"],
                           tablefmt="github"),
                  f"render a clip {t['source']:.3f} s; video metrics {t['metrics']:.3f} s; "
                  f"attacks, all {len(t['attacks'])} settings once "
                  f"{sum(t['attacks'].values()):.3f} s"]
    minutes = result["estimate_s"] / 60
    lines += ["", f"estimate for an empty cache: {minutes:.1f} min (I3D/FVD and cache I/O not "
                  "included; from one clip, expect tens of percent either way)"]
    parts = [f"{name} {seconds / 60:.1f} min"
             for name, seconds in result["estimate_parts_s"].items()]
    lines.append("  of which " + ", ".join(parts) + " (embed: with the video metrics)")
    return "\n".join(lines)
