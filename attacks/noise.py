"""Additive Gaussian noise on [0, 1] pixel values, then clamped to [0, 1].

The paper draws the noise std ``sigma ~ U(0, 0.2)``; we take that sigma on [0, 1] values
(0.2 is 51 grey levels of 255). With a range, sigma is drawn once per clip (per row) from the
row's generator, then i.i.d. noise for every pixel, channel and frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch

from attacks import draw_uniform, float_or_range, normal
from attacks.batched import BatchedAttack, fixed_strength
from bench.core.api import AttackParams


class Noise(BatchedAttack):
    """Additive i.i.d. Gaussian noise of std ``sigma`` (on [0, 1] values), clamped; its info:
    the ``sigma`` used. Training form: the same, with the identity's gradient (exact for the
    additive noise, straight-through for the clamp)."""

    name = "noise"
    version = "1"
    family = "paper"
    description = "additive Gaussian noise of std `sigma` on [0, 1] values, clamped"
    training = "straight-through"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``sigma``: noise std on [0, 1] values, or a range (lo, hi) drawn per row."""

        sigma: Union[float, tuple] = float_or_range((0.0, 0.2), 0.0, math.inf)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(sigma=s)
                                         for s in (0.01, 0.02, 0.05, 0.1, 0.2)]

    def strength(self) -> float:
        return fixed_strength(self.params.sigma)

    def apply(self, frames, generator):
        """frames (B, T, 3, H, W) -> clamp(frames + sigma_b * N(0, 1), 0, 1), a sigma per clip
        (drawn before the noise)."""
        sigmas = draw_uniform(self.params.sigma, frames.shape[0], generator)
        gauss = normal(tuple(frames.shape), generator)
        scale = torch.tensor(sigmas, dtype=torch.float32, device=gauss.device)
        noise = (gauss * scale.view(-1, 1, 1, 1, 1)).to(device=frames.device, dtype=frames.dtype)
        return (frames + noise).clamp(0.0, 1.0), [{"sigma": s} for s in sigmas]
