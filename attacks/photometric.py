"""Photometric attacks (family ``photometric``): brightness, contrast, saturation, hue, gamma,
jpeg, median.

The colour adjustments follow ``torchvision.transforms.functional.adjust_*`` on RGB in [0, 1],
per frame, with ``gray = 0.2989 R + 0.587 G + 0.114 B`` and ``blend(a, b, f) = clamp(f a +
(1 - f) b, 0, 1)``:

- brightness ``f``: ``blend(x, 0, f) = clamp(f x)``;
- contrast ``f``: ``blend(x, m, f)`` with ``m`` the mean of ``gray`` over the frame;
- saturation ``f``: ``blend(x, gray, f)`` (0: greyscale);
- hue ``h`` in [-0.5, 0.5]: RGB -> HSV (the hexcone model, as ``colorsys``), hue plus ``h``
  modulo 1, back to RGB;
- gamma ``g``: ``clamp(x ** g)``.

These are exact and differentiable (their training form is the evaluation form). ``jpeg``: a
real per-frame JPEG round trip through PIL (libjpeg) at ``quality``, 4:2:0 chroma, baseline;
``median``: a median filter of an odd ``kernel`` per channel (reflected borders). Both train
straight-through (forward the attack, backward the identity). A parameter given as a range
``(lo, hi)`` is drawn U(lo, hi) once per clip (per row) from the row's generator.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from attacks import draw_uniform, float_or_range, integer
from attacks.batched import BatchedAttack, fixed_strength
from bench.core.api import AttackParams, BenchError
from bench.core.video import from_uint8, to_uint8

#: torchvision's ``rgb_to_grayscale`` weights of R, G, B
GRAY = (0.2989, 0.587, 0.114)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) -> luma (..., 1, H, W) with torchvision's weights."""
    r, g, b = images.unbind(-3)
    return (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(-3)


def blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """``clamp(factor * a + (1 - factor) * b, 0, 1)``."""
    return (factor * a + (1.0 - factor) * b).clamp(0.0, 1.0)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, H, W) in [0, 1] -> HSV (..., 3, H, W), hue in [0, 1) (``colorsys``'s
    hexcone; a tie for the largest channel goes to R, then G; grey has hue 0)."""
    r, g, b = rgb.unbind(-3)
    maxc, _ = rgb.max(dim=-3)
    minc, _ = rgb.min(dim=-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(r == maxc, (g - b) / safe,
                      torch.where(g == maxc, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = torch.where(delta > 0, torch.remainder(hue / 6.0, 1.0), torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)),
                      torch.zeros_like(maxc))
    return torch.stack([hue, sat, maxc], dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """The inverse of ``rgb_to_hsv``: HSV (..., 3, H, W) -> RGB (..., 3, H, W)."""
    hue, sat, val = hsv.unbind(-3)
    sector = torch.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = torch.remainder(sector, 6).to(torch.int64)
    p, q, t = val * (1 - sat), val * (1 - sat * frac), val * (1 - sat * (1 - frac))
    table = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)]
    channels = []
    for c in range(3):
        out = table[5][c]
        for s in range(4, -1, -1):
            out = torch.where(sector == s, table[s][c], out)
        channels.append(out)
    return torch.stack(channels, dim=-3)


def _factor_grid(cls, name: str, values) -> list[AttackParams]:
    return [cls.default_params()] + [cls.Params(**{name: v}) for v in values]


class Brightness(BatchedAttack):
    """Scales every pixel by ``factor`` (torchvision's ``adjust_brightness``)."""

    name = "brightness"
    version = "1"
    family = "photometric"
    description = "brightness: clamp(`factor` * x) (torchvision adjust_brightness)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``factor``: >= 0 (1: unchanged, 0: black), or a range drawn per row."""

        factor: Union[float, tuple] = float_or_range(0.7, 0.0, math.inf, "brightness factor")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return _factor_grid(cls, "factor", (0.5, 0.85, 1.2, 1.5))

    def strength(self) -> float:
        return fixed_strength(self.params.factor)

    def apply(self, frames, generator):
        factors = draw_uniform(self.params.factor, len(frames), generator)
        out = [blend(clip, torch.zeros_like(clip), f) for clip, f in zip(frames, factors,
                                                                           strict=True)]
        return torch.stack(out), [{"factor": f} for f in factors]


class Contrast(BatchedAttack):
    """Blends every frame with its mean grey level (torchvision's ``adjust_contrast``)."""

    name = "contrast"
    version = "1"
    family = "photometric"
    description = "contrast: blend with the frame's mean grey by `factor` (adjust_contrast)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``factor``: >= 0 (1: unchanged, 0: flat mean grey), or a range drawn per row."""

        factor: Union[float, tuple] = float_or_range(0.7, 0.0, math.inf, "contrast factor")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return _factor_grid(cls, "factor", (0.5, 0.85, 1.3, 1.6))

    def strength(self) -> float:
        return fixed_strength(self.params.factor)

    def apply(self, frames, generator):
        factors = draw_uniform(self.params.factor, len(frames), generator)
        out = []
        for clip, f in zip(frames, factors, strict=True):
            mean = grayscale(clip).mean(dim=(-3, -2, -1), keepdim=True)
            out.append(blend(clip, mean, f))
        return torch.stack(out), [{"factor": f} for f in factors]


class Saturation(BatchedAttack):
    """Blends every pixel with its grey level (torchvision's ``adjust_saturation``)."""

    name = "saturation"
    version = "1"
    family = "photometric"
    description = "saturation: blend with the greyscale frame by `factor` (adjust_saturation)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``factor``: >= 0 (1: unchanged, 0: greyscale), or a range drawn per row."""

        factor: Union[float, tuple] = float_or_range(0.5, 0.0, math.inf, "saturation factor")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return _factor_grid(cls, "factor", (0.0, 0.25, 1.5, 2.0))

    def strength(self) -> float:
        return fixed_strength(self.params.factor)

    def apply(self, frames, generator):
        factors = draw_uniform(self.params.factor, len(frames), generator)
        out = [blend(clip, grayscale(clip), f) for clip, f in zip(frames, factors, strict=True)]
        return torch.stack(out), [{"factor": f} for f in factors]


class Hue(BatchedAttack):
    """Rotates every pixel's hue by ``shift`` turns (torchvision's ``adjust_hue``)."""

    name = "hue"
    version = "1"
    family = "photometric"
    description = "hue rotation by `shift` turns in HSV, in [-0.5, 0.5] (adjust_hue)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``shift``: hue offset in turns, [-0.5, 0.5] (0.5: opposite colours), or a range."""

        shift: Union[float, tuple] = float_or_range(0.1, -0.5, 0.5, "hue shift")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return _factor_grid(cls, "shift", (0.02, 0.05, 0.2, 0.5))

    def strength(self) -> float:
        shift = self.params.shift
        return math.nan if isinstance(shift, tuple) else abs(float(shift))

    def apply(self, frames, generator):
        shifts = draw_uniform(self.params.shift, len(frames), generator)
        out = []
        for clip, s in zip(frames, shifts, strict=True):
            hsv = rgb_to_hsv(clip)
            hue = torch.remainder(hsv[:, 0] + s, 1.0)
            out.append(hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], dim=1)))
        return torch.stack(out), [{"shift": s} for s in shifts]


class Gamma(BatchedAttack):
    """Raises every value to the power ``gamma`` (torchvision's ``adjust_gamma``, gain 1)."""

    name = "gamma"
    version = "1"
    family = "photometric"
    description = "gamma: x ** `gamma` (above 1 darkens, below 1 brightens; adjust_gamma)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``gamma``: the exponent, > 0 (1: unchanged), or a range drawn per row."""

        gamma: Union[float, tuple] = float_or_range(1.5, 0.0, math.inf, positive=True)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return _factor_grid(cls, "gamma", (0.5, 0.7, 2.0, 2.5))

    def strength(self) -> float:
        return fixed_strength(self.params.gamma)

    def apply(self, frames, generator):
        gammas = draw_uniform(self.params.gamma, len(frames), generator)
        out = []
        for clip, g in zip(frames, gammas, strict=True):
            clip = clip.clamp(0.0, 1.0)
            # 0 ** g is 0; the positive branch alone would give 0 * inf gradients at 0
            powered = torch.where(clip > 0, clip.clamp_min(1e-12) ** g, torch.zeros_like(clip))
            out.append(powered.clamp(0.0, 1.0))
        return torch.stack(out), [{"gamma": g} for g in gammas]


def jpeg_roundtrip(clip: torch.Tensor, quality: int) -> tuple[torch.Tensor, int]:
    """clip (T, 3, H, W) in [0, 1] -> (every frame through PIL's JPEG at ``quality``, 4:2:0,
    float32 on 8-bit levels, same device; the JPEG files' total size in bytes)."""
    from PIL import Image

    pixels = to_uint8(clip.detach().to("cpu", torch.float32))
    decoded, total = [], 0
    for frame in pixels.permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality,
                                                subsampling="4:2:0", optimize=False)
        total += buffer.tell()
        buffer.seek(0)
        with Image.open(buffer) as image:
            decoded.append(np.asarray(image.convert("RGB")))
    out = from_uint8(torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2))
    return out.to(clip.device), total


class JPEG(BatchedAttack):
    """Every frame saved as a JPEG at ``quality`` and read back (PIL / libjpeg)."""

    name = "jpeg"
    version = "1"
    family = "photometric"
    description = "per-frame JPEG round trip (PIL, 4:2:0) at `quality` 1-95"
    training = "straight-through"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``quality``: the JPEG quality, 1-95 (higher: bigger, better)."""

        quality: int = integer(50, 1, 95, "jpeg quality")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(quality=q) for q in (90, 75, 30, 10)]

    def strength(self) -> float:
        return float(self.params.quality)

    def apply(self, frames, generator):
        out, infos = [], []
        for clip in frames:
            decoded, size = jpeg_roundtrip(clip, self.params.quality)
            out.append(decoded)
            infos.append({"bytes": size})
        return torch.stack(out).to(frames.dtype), infos


def median_filter(clip: torch.Tensor, kernel: int) -> torch.Tensor:
    """clip (T, C, H, W) -> the median of each ``kernel`` x ``kernel`` window per channel,
    borders reflected without repeating the edge pixel (scipy's ``mirror``); one frame at a
    time to bound memory."""
    time, channels, height, width = clip.shape
    pad = kernel // 2
    if pad >= min(height, width):
        raise BenchError(f"median kernel {kernel} needs frames larger than {pad} pixels, "
                         f"got {height}x{width}")
    out = []
    for frame in clip:
        padded = F.pad(frame[:, None], (pad, pad, pad, pad), mode="reflect")
        windows = F.unfold(padded, kernel)  # (C, k * k, H * W)
        out.append(windows.median(dim=1).values.reshape(channels, height, width))
    return torch.stack(out)


class Median(BatchedAttack):
    """A median filter of every frame and channel (odd ``kernel``, reflected borders)."""

    name = "median"
    version = "1"
    family = "photometric"
    description = "median filter per frame and channel, odd `kernel` size, reflected borders"
    training = "straight-through"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``kernel``: the odd window side in pixels."""

        kernel: int = integer(3, 1, 99, "median kernel", odd=True)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(kernel=k) for k in (5, 7)]

    def strength(self) -> float:
        return float(self.params.kernel)

    def apply(self, frames, generator):
        out = [median_filter(clip, self.params.kernel) for clip in frames]
        return torch.stack(out), [{} for _ in frames]
