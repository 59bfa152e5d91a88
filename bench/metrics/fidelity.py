"""Fidelity metrics as plain functions on tensors: PSNR and SSIM of logos and videos, and
the accuracy of placing logo patches back.

Images and videos are float tensors in [0, 1] (peak value 1, so PSNR here equals PSNR on the
x255 image with peak 255): a logo is ``(3, h, w)``, a video ``(T, 3, H, W)``. The metric
objects built on these functions (``W_PSNR``, ``V_SSIM``, ...) are in ``bench.metrics``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from bench.core.api import METRIC_NOT_APPLICABLE, BenchError, MetricValue

#: per-frame (and per-logo) PSNR of identical images is capped here before averaging/storing
PSNR_CAP_DB = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: SSIM of a video is computed this many frames at a time (bounds float64 memory)
_SSIM_FRAME_CHUNK = 8


# --------------------------------------------------------------------------- input checks


def check_pair(pred: torch.Tensor, target: torch.Tensor, ndim: int, what: str) -> None:
    for label, t in (("prediction", pred), ("reference", target)):
        if not isinstance(t, torch.Tensor):
            raise BenchError(f"{what}: {label} must be a torch.Tensor, got {type(t).__name__}")
    if pred.ndim != ndim or pred.shape != target.shape:
        raise BenchError(
            f"{what}: expected two tensors of the same {ndim}-d shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}")


def check_finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise BenchError(f"{what} contains {bad} NaN/inf value(s)")


# --------------------------------------------------------------------------- PSNR


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of two equal-shape tensors with values in [0, 1] (peak 1), in float64.

    Identical inputs give ``math.inf`` (MSE 0). Values are not clipped.
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise BenchError("psnr: inputs must be torch tensors")
    if pred.shape != target.shape:
        raise BenchError(f"psnr: shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return psnr_from_mse(torch.mean((pred.double() - target.double()) ** 2).item())


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB (peak 1) of a mean squared error on [0, 1] values: inf for 0, NaN for NaN."""
    if math.isnan(mse):
        return math.nan
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf


def _frame_psnr(watermarked: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """(T, ...) pairs -> per-frame PSNR (T,) float64 in dB, capped at ``PSNR_CAP_DB``."""
    diff = watermarked.double() - cover.double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    values = 10.0 * torch.log10(1.0 / mse)  # inf where mse == 0
    return values.clamp(max=PSNR_CAP_DB)


def video_psnr(watermarked: torch.Tensor, cover: torch.Tensor) -> float:
    """Mean over frames of per-frame PSNR (dB) of two (T, 3, H, W) videos in [0, 1].

    A frame identical in both videos has PSNR inf, capped at ``PSNR_CAP_DB`` (100 dB) before
    the average, so one perfect frame does not make the video's value infinite.
    """
    check_pair(watermarked, cover, 4, "video_psnr")
    return float(_frame_psnr(watermarked, cover).mean())


# --------------------------------------------------------------------------- SSIM


def _gaussian_taps(device: torch.device) -> torch.Tensor:
    """Normalised 1D Gaussian, 11 taps, sigma 1.5, float64: (11,).

    The 11x11 window is its outer product; filtering is done separably (rows, then columns),
    which is the same linear map but needs ~11x less scratch memory than a 2D convolution.
    """
    radius = SSIM_WINDOW // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _gaussian_filter_valid(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 1, H-10, W-10): the 11x11 Gaussian window over the valid region."""
    g = _gaussian_taps(x.device)
    x = F.conv2d(x, g.reshape(1, 1, 1, -1))
    return F.conv2d(x, g.reshape(1, 1, -1, 1))


def _ssim_per_channel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pairs -> mean SSIM per image and channel (N, C), float64.

    Gaussian-weighted local statistics (population covariance), data range 1, averaged over
    the valid region (pixels whose whole 11x11 window lies inside the image).
    """
    n, c, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise BenchError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    x = x.double().reshape(n * c, 1, h, w)
    y = y.double().reshape(n * c, 1, h, w)
    stats = _gaussian_filter_valid(torch.cat([x, y, x * x, y * y, x * y]))
    mu_x, mu_y, xx, yy, xy = stats.chunk(5)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov_xy = xy - mu_x * mu_y
    c1 = (SSIM_K1 * 1.0) ** 2
    c2 = (SSIM_K2 * 1.0) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (num / den).mean(dim=(1, 2, 3)).reshape(n, c)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """SSIM of two (C, h, w) images in [0, 1]: per channel, then averaged.

    Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, data range 1, float64, mean over the
    valid region; equals ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0)``. Images under
    11 px on a side raise BenchError (skimage refuses them too).
    """
    check_pair(pred, target, 3, "ssim")
    return float(_ssim_per_channel(pred[None], target[None]).mean())


def video_ssim(watermarked: torch.Tensor, cover: torch.Tensor) -> float:
    """Mean over frames of per-frame SSIM (as ``ssim``) of two (T, 3, H, W) videos."""
    check_pair(watermarked, cover, 4, "video_ssim")
    per_frame = [
        _ssim_per_channel(watermarked[i:i + _SSIM_FRAME_CHUNK], cover[i:i + _SSIM_FRAME_CHUNK])
        .mean(dim=1)
        for i in range(0, watermarked.shape[0], _SSIM_FRAME_CHUNK)
    ]
    return float(torch.cat(per_frame).mean())


# --------------------------------------------------------------------------- logos


def check_logos(recovered: torch.Tensor, logo: torch.Tensor) -> None:
    """Both (3, h, w) tensors of one shape, finite; else BenchError."""
    if not isinstance(recovered, torch.Tensor) or not isinstance(logo, torch.Tensor):
        raise BenchError("watermark_metrics: recovered logo and logo must be torch tensors")
    if recovered.ndim != 3 or recovered.shape != logo.shape:
        raise BenchError(
            f"recovered logo has shape {tuple(recovered.shape)} but the embedded logo has "
            f"{tuple(logo.shape)}: a method must return (3, h, w) logos of the embedded size")
    check_finite(recovered, "recovered logo")
    check_finite(logo, "embedded logo")


NO_POSITIONS_REASON = "the method reports no patch positions"


def patch_accuracy(placed: Optional[torch.Tensor], embedded: Optional[torch.Tensor]
                   ) -> MetricValue:
    """Fraction of logo patches placed back where they belong, in [0, 1].

    ``embedded`` (P,): where ``embed`` hid each of the logo's P patches (a method-defined
    location index, e.g. ``frame * regions + region``); ``placed`` (P,): the location that
    ``extract`` took the patch for logo slot p from (-1: slot left empty). A patch counts as
    placed back correctly when both agree. NaN with the reason when the method reports no
    positions (either tensor None); a shape mismatch raises BenchError.
    """
    if placed is None or embedded is None:
        return MetricValue(math.nan, NO_POSITIONS_REASON, METRIC_NOT_APPLICABLE)
    placed = torch.as_tensor(placed).reshape(-1)
    embedded = torch.as_tensor(embedded).reshape(-1)
    if placed.shape != embedded.shape or placed.numel() == 0:
        raise BenchError(f"patch positions: extract placed {placed.numel()} patches but embed "
                         f"hid {embedded.numel()}")
    return MetricValue(float((placed.long() == embedded.long()).double().mean()))
