"""Geometric attacks (family ``geometric``): crop, resize, hflip, perspective, translation.

Coordinates are continuous with pixel ``i`` covering [i, i + 1] (its centre at i + 0.5), y down.
Resampling is PIL's bilinear filter (``Image.resize(..., BILINEAR)``: a triangle filter,
widened by the scale factor when shrinking, so shrinking averages instead of aliasing;
``F.interpolate(mode="bilinear", antialias=True, align_corners=False)``). Warps sample with
``grid_sample`` (bilinear, zero fill outside the frame). A parameter given as a range
``(lo, hi)`` is drawn U(lo, hi) once per clip (per row) from the row's generator and used for
every frame. Sides are rounded to whole pixels with Python's ``round``. Every training form is
the evaluation form itself (differentiable: slicing, interpolation, ``grid_sample``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F

from attacks import draw_uniform, float_or_range, parse_float_or_range, uniform
from attacks.batched import BatchedAttack, fixed_strength
from bench.core.api import AttackParams, BenchError


def pil_resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """images (N, C, h, w) -> (N, C, height, width) with PIL's bilinear filter; differentiable."""
    if tuple(images.shape[-2:]) == (height, width):
        return images.clone()
    return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True)


def centre_box(height: int, width: int, fraction: float) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of the centred box keeping ``fraction`` of each side (>= 1 px)."""
    box_h = min(height, max(1, round(fraction * height)))
    box_w = min(width, max(1, round(fraction * width)))
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


class Crop(BatchedAttack):
    """Keeps the centred ``fraction`` of each side, then resizes back to H x W."""

    name = "crop"
    version = "1"
    family = "geometric"
    description = "keep the centred `fraction` of each side, resize back (PIL bilinear)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``fraction``: kept share of each side in (0, 1], or a range drawn per row."""

        fraction: Union[float, tuple] = float_or_range(0.8, 0.0, 1.0, "crop fraction",
                                                       positive=True)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(fraction=f) for f in (0.9, 0.7, 0.6, 0.5)]

    def strength(self) -> float:
        return fixed_strength(self.params.fraction)

    def apply(self, frames, generator):
        height, width = frames.shape[-2:]
        out, infos = [], []
        for clip, fraction in zip(frames, draw_uniform(self.params.fraction, len(frames),
                                                       generator), strict=True):
            top, left, box_h, box_w = centre_box(height, width, fraction)
            out.append(pil_resize(clip[..., top:top + box_h, left:left + box_w], height, width))
            infos.append({"fraction": fraction, "box": (top, left, box_h, box_w)})
        return torch.stack(out), infos


class Resize(BatchedAttack):
    """Shrinks every frame by ``scale``, then enlarges it back to H x W (PIL bilinear)."""

    name = "resize"
    version = "1"
    family = "geometric"
    description = "shrink by `scale`, then enlarge back to the frame size (PIL bilinear)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``scale``: the shrunk side over the original side, in (0, 1], or a range."""

        scale: Union[float, tuple] = float_or_range(0.5, 0.0, 1.0, "resize scale", positive=True)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(scale=s) for s in (0.75, 0.35, 0.25)]

    def strength(self) -> float:
        return fixed_strength(self.params.scale)

    def apply(self, frames, generator):
        height, width = frames.shape[-2:]
        out, infos = [], []
        for clip, scale in zip(frames, draw_uniform(self.params.scale, len(frames), generator),
                               strict=True):
            small_h, small_w = max(1, round(scale * height)), max(1, round(scale * width))
            out.append(pil_resize(pil_resize(clip, small_h, small_w), height, width))
            infos.append({"scale": scale, "size": (small_h, small_w)})
        return torch.stack(out), infos


class HFlip(BatchedAttack):
    """Mirrors every frame left to right."""

    name = "hflip"
    version = "1"
    family = "geometric"
    description = "horizontal flip (mirror left to right)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """No parameters."""

    def strength(self) -> float:
        return math.nan

    def apply(self, frames, generator):
        return frames.flip(-1), [{} for _ in frames]


def perspective_matrix(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """float64 (3, 3) homography ``M`` with ``M @ (x, y, 1) ~ (u, v, 1)`` mapping each of the
    four points ``src`` (4, 2) onto ``dst`` (4, 2) (a direct 8 x 8 linear solve)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src.tolist(), dst.tolist(), strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coeffs = torch.linalg.solve(torch.tensor(rows, dtype=torch.float64),
                                torch.tensor(rhs, dtype=torch.float64))
    return torch.cat([coeffs, coeffs.new_ones(1)]).reshape(3, 3)


def warp_perspective(clip: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """clip (T, C, H, W) warped so that the frame's corners ``(0, 0), (W, 0), (W, H), (0, H)``
    land on ``corners`` (4, 2) in pixels; bilinear, zero fill; differentiable in ``clip``."""
    time, channels, height, width = clip.shape
    frame = torch.tensor([[0, 0], [width, 0], [width, height], [0, height]], dtype=torch.float64)
    to_input = perspective_matrix(corners.to(torch.float64), frame)  # output -> input
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                            torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1) @ to_input.T
    u, v = points[..., 0] / points[..., 2], points[..., 1] / points[..., 2]
    grid = torch.stack([2 * u / width - 1, 2 * v / height - 1], dim=-1)
    grid = grid.to(device=clip.device, dtype=clip.dtype).expand(time, height, width, 2)
    return F.grid_sample(clip, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Perspective(BatchedAttack):
    """A random perspective warp: each frame corner moved by up to ``jitter`` of the side."""

    name = "perspective"
    version = "1"
    family = "geometric"
    description = ("perspective warp moving each corner by U(-`jitter`, `jitter`) of the side, "
                   "bilinear, black fill")

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``jitter``: the largest corner move as a fraction of the side, in [0, 0.5], or a
        range drawn per row; each corner's x and y moves are drawn U(-jitter, jitter) per row
        (times W and H)."""

        jitter: Union[float, tuple] = float_or_range(0.1, 0.0, 0.5, "perspective jitter")

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(jitter=j) for j in (0.05, 0.2, 0.3)]

    def strength(self) -> float:
        return fixed_strength(self.params.jitter)

    def apply(self, frames, generator):
        height, width = frames.shape[-2:]
        frame = torch.tensor([[0, 0], [width, 0], [width, height], [0, height]],
                             dtype=torch.float64)
        jitters = draw_uniform(self.params.jitter, len(frames), generator)
        out, infos = [], []
        for clip, jitter in zip(frames, jitters, strict=True):
            u = uniform((4, 2), generator)
            corners = frame + (2 * u - 1) * jitter * torch.tensor([width, height],
                                                                  dtype=torch.float64)
            out.append(warp_perspective(clip, corners))
            infos.append({"jitter": jitter, "corners": corners.tolist()})
        return torch.stack(out), infos


def shift(clip: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """clip (..., H, W) moved ``dx`` pixels right and ``dy`` down, zeros shifted in."""
    height, width = clip.shape[-2:]
    padded = F.pad(clip, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + height, left:left + width]


UNITS = ("fraction", "px")


class Translation(BatchedAttack):
    """Moves the picture by whole pixels (``x`` right, ``y`` down), black shifted in."""

    name = "translation"
    version = "1"
    family = "geometric"
    description = "shift by (`x`, `y`) (fractions of the side or pixels), black fill"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``x``, ``y``: the move right and down, or ranges drawn per row; ``unit``:
        ``fraction`` (of W and H, in [-1, 1]) or ``px``. Moves round to whole pixels."""

        x: Union[float, tuple] = (-0.1, 0.1)
        y: Union[float, tuple] = (-0.1, 0.1)
        unit: str = "fraction"

        def __post_init__(self):
            if self.unit not in UNITS:
                raise BenchError(f"translation unit must be one of {', '.join(UNITS)}, "
                                 f"got {self.unit!r}")
            bound = 1.0 if self.unit == "fraction" else 1e6
            for axis in ("x", "y"):
                object.__setattr__(self, axis, parse_float_or_range(
                    getattr(self, axis), f"translation {axis}", -bound, bound))

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(x=d, y=d) for d in (0.05, 0.1, 0.2)]

    def strength(self) -> float:
        x, y = self.params.x, self.params.y
        if isinstance(x, tuple) or isinstance(y, tuple):
            return math.nan
        return max(abs(float(x)), abs(float(y)))

    def apply(self, frames, generator):
        height, width = frames.shape[-2:]
        count = len(frames)
        xs = draw_uniform(self.params.x, count, generator)
        ys = draw_uniform(self.params.y, count, generator)
        out, infos = [], []
        for clip, x, y in zip(frames, xs, ys, strict=True):
            if self.params.unit == "fraction":
                x, y = x * width, y * height
            dx, dy = round(x), round(y)
            out.append(shift(clip, dx, dy))
            infos.append({"dx": dx, "dy": dy})
        return torch.stack(out), infos
