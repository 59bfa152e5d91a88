"""``bench compare``: video metrics between two folders of mp4 files matched by file name.

The reference folder holds the cover videos, the candidate folder the watermarked (or
otherwise processed) ones. For each file name present in both, V-PSNR, V-SSIM, V-LPIPS and
tLP are computed (candidate vs reference) and averaged over videos; FVD is computed between
the two sets. Pairs that cannot be compared are skipped with the reason.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tabulate import tabulate

from bench.core.api import BenchError
from bench.core.video import from_uint8, to_uint8

VIDEO_METRICS = ("v_psnr", "v_ssim", "v_lpips", "tlp")


def _mp4s(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise BenchError(f"{folder} is not a folder of mp4 files")
    return {p.name: p for p in sorted(folder.glob("*.mp4")) if p.is_file()}


def compare_folders(reference_dir: str | Path, candidate_dir: str | Path,
                    device: str = "cpu") -> dict:
    """Compare ``candidate_dir/*.mp4`` with ``reference_dir/*.mp4`` of the same names.

    Returns ``{"v_psnr", "v_ssim", "v_lpips", "tlp": mean over compared videos (float) or
    None, "fvd": float or None, "n": videos compared, "videos": their names,
    "unavailable": {metric: reason}, "skipped": [(file name, reason)]}``. A pair whose frame
    count or frame size differs is skipped (never cut: a cut candidate would be scored on
    frames it does not have).
    """
    from bench import metrics
    from bench.core.video_io import read_video
    from bench.metrics.fvd import fvd_of_videos

    reference = _mp4s(Path(reference_dir))
    candidate = _mp4s(Path(candidate_dir))
    skipped: list[tuple[str, str]] = []
    for name in sorted(set(reference) - set(candidate)):
        skipped.append((name, f"unmatched: only in the reference folder {reference_dir}"))
    for name in sorted(set(candidate) - set(reference)):
        skipped.append((name, f"unmatched: only in the candidate folder {candidate_dir}"))

    scorer = metrics.VideoScorer(device=device)
    values: dict[str, list[float]] = {m: [] for m in VIDEO_METRICS}
    reasons: dict[str, str] = {}
    compared: list[str] = []
    covers: list[torch.Tensor] = []
    marked: list[torch.Tensor] = []
    for name in sorted(set(reference) & set(candidate)):
        try:
            ref, _ = read_video(reference[name])
            cand, _ = read_video(candidate[name])
        except BenchError as exc:
            skipped.append((name, f"unreadable: {exc}"))
            continue
        if ref.shape[2:] != cand.shape[2:]:
            skipped.append((name, f"shape mismatch: frame size {tuple(ref.shape[2:])} in the "
                                  f"reference vs {tuple(cand.shape[2:])} in the candidate"))
            continue
        if ref.shape[0] != cand.shape[0]:
            skipped.append((name, f"shape mismatch: {ref.shape[0]} frames in the reference vs "
                                  f"{cand.shape[0]} in the candidate"))
            continue
        try:
            scores = scorer(cand, ref)
        except BenchError as exc:
            skipped.append((name, f"not scored: {exc}"))
            continue
        compared.append(name)
        for metric in VIDEO_METRICS:
            value = scores[metric]
            if value.available:
                values[metric].append(value.value)
            elif value.reason:
                reasons.setdefault(metric, value.reason)
        # decoded videos are 8-bit: kept as uint8 (4x less memory) until FVD needs them
        covers.append(to_uint8(ref))
        marked.append(to_uint8(cand))

    result: dict = {"n": len(compared), "videos": compared, "skipped": skipped}
    unavailable: dict[str, str] = {}
    for metric in VIDEO_METRICS:
        if values[metric]:
            result[metric] = math.fsum(values[metric]) / len(values[metric])
        else:
            result[metric] = None
            unavailable[metric] = reasons.get(metric) or "no video pair could be compared"
    if compared:
        fvd = fvd_of_videos([from_uint8(v) for v in marked], [from_uint8(v) for v in covers])
        result["fvd"] = fvd.value if fvd.available else None
        if not fvd.available:
            unavailable["fvd"] = fvd.reason or "FVD could not be computed"
    else:
        result["fvd"] = None
        unavailable["fvd"] = "no video pair could be compared"
    result["unavailable"] = unavailable
    return result


def format_compare(result: dict) -> str:
    """A table of the metrics (mean over videos, direction), then skipped files and notes."""
    from bench import metrics

    body = []
    for column in (*VIDEO_METRICS, "fvd"):
        spec = metrics.by_column(column).spec
        value = result.get(column)
        cell = "unavailable" if value is None else f"{value:.4f}"
        unit = f" ({spec.unit})" if spec.unit else ""
        direction = "higher is better" if spec.higher_is_better else "lower is better"
        body.append([spec.name + unit, cell, direction])
    lines = [f"{result.get('n', 0)} video(s) compared",
             tabulate(body, headers=["metric", "mean over videos", ""], tablefmt="simple",
                      disable_numparse=True)]
    for metric, reason in (result.get("unavailable") or {}).items():
        lines.append(f"{metric} unavailable: {reason}")
    skipped = result.get("skipped") or []
    if skipped:
        lines.append(f"{len(skipped)} file(s) skipped:")
        lines.extend(f"  {name}: {reason}" for name, reason in skipped)
    return "\n".join(lines)


__all__ = ["compare_folders", "format_compare"]
