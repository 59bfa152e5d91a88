"""Rotation of every frame about its centre by ``angle`` degrees (the paper: within +-30).

Positive angles turn the picture counter-clockwise as displayed (as ``torch.rot90`` with
``dims=(-2, -1)`` and ``scipy.ndimage.rotate`` do). Bilinear sampling, zero (black) fill
outside the source frame, the frame size kept. With a range, the angle is drawn once per clip
(per row) from the row's generator and used for all frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch
import torch.nn.functional as F

from attacks import draw_uniform, float_or_range
from attacks.batched import BatchedAttack, fixed_strength
from bench.core.api import AttackParams


def rotation_theta(angles_deg: list[float], height: int, width: int) -> torch.Tensor:
    """float64 (N, 2, 3) ``affine_grid`` matrices (output -> input, normalised coordinates,
    ``align_corners=False``) rotating an H x W image about its centre by each angle."""
    thetas = torch.zeros(len(angles_deg), 2, 3, dtype=torch.float64)
    for i, angle in enumerate(angles_deg):
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        # pixel offsets from the centre, y down: input = [[cos, -sin], [sin, cos]] @ output;
        # normalised x = x_pix / (W / 2), y = y_pix / (H / 2)
        thetas[i, 0, 0] = cos
        thetas[i, 0, 1] = -sin * height / width
        thetas[i, 1, 0] = sin * width / height
        thetas[i, 1, 1] = cos
    return thetas


def rotate_clips(frames: torch.Tensor, angles_deg: list[float]) -> torch.Tensor:
    """frames (B, T, C, H, W), one angle per clip -> rotated (B, T, C, H, W); differentiable."""
    batch, time, channels, height, width = frames.shape
    theta = rotation_theta(angles_deg, height, width).repeat_interleave(time, dim=0)
    theta = theta.to(device=frames.device, dtype=frames.dtype)
    flat = frames.reshape(batch * time, channels, height, width)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(frames.shape)


class Rotation(BatchedAttack):
    """Rotates every frame about the centre (bilinear, black fill, same size); its info: the
    ``angle`` used (degrees)."""

    name = "rotation"
    version = "1"
    family = "paper"
    description = "rotation by `angle` degrees about the centre, bilinear, black fill"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``angle``: degrees counter-clockwise, or a range (lo, hi) drawn per row."""

        angle: Union[float, tuple] = float_or_range((-30.0, 30.0), -360.0, 360.0)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(angle=a) for a in (5.0, 10.0, 15.0, 30.0)]

    def strength(self) -> float:
        return abs(fixed_strength(self.params.angle))

    def apply(self, frames, generator):
        angles = draw_uniform(self.params.angle, frames.shape[0], generator)
        return rotate_clips(frames, angles), [{"angle": a} for a in angles]
