"""Additive Gaussian noise on [0, 1] pixel values, then clamped to [0, 1].

The paper draws the noise std ``sigma ~ U(0, 0.2)``; we take that sigma on [0, 1] values
(0.2 is 51 grey levels of 255). With a range, sigma is drawn once per clip (per row) from the
row's generator, then i.i.d. noise for every pixel, channel and frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch

from attacks import check_params, check_video, draw_uniform, parse_float_or_range, straight_through
from bench.api import Attack, AttackParams


class Noise(Attack):
    """Additive i.i.d. Gaussian noise of std ``sigma`` (on [0, 1] values), clamped."""

    name = "noise"
    version = "1"
    family = "paper"
    description = "additive Gaussian noise of std `sigma` on [0, 1] values, clamped"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``sigma``: noise std on [0, 1] values, or a range (lo, hi) drawn per row."""

        sigma: Union[float, tuple] = (0.0, 0.2)

        def __post_init__(self):
            object.__setattr__(self, "sigma",
                               parse_float_or_range(self.sigma, "sigma", 0.0, math.inf))

    def __init__(self, params: Optional[AttackParams] = None):
        super().__init__(params)
        check_params(self, self.params)
        self.last_info: dict = {}

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(sigma=s)
                                         for s in (0.01, 0.02, 0.05, 0.1, 0.2)]

    def strength(self) -> float:
        sigma = self.params.sigma
        return math.nan if isinstance(sigma, tuple) else float(sigma)

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """frames (T, 3, H, W) in [0, 1] -> noisy frames (T, 3, H, W) float32 in [0, 1]."""
        check_video(frames)
        noisy, sigmas = self._add_noise(frames.to(torch.float32)[None], generator)
        self.last_info = {"sigma": sigmas[0]}
        return noisy[0].clamp(0.0, 1.0)

    def train_form(self):
        """``(frames (B, T, 3, H, W), generator) -> frames``: additive noise, then a clamp
        whose gradient is the identity (straight-through)."""
        return self._apply_batch

    def _apply_batch(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_video(frames, batched=True)
        noisy, _ = self._add_noise(frames, generator)
        return straight_through(noisy, noisy.clamp(0.0, 1.0))

    def _add_noise(self, frames: torch.Tensor,
                   generator: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """frames (B, T, 3, H, W) -> frames + sigma_b * N(0, 1) (unclamped), the sigmas."""
        sigmas = draw_uniform(self.params.sigma, frames.shape[0], generator)
        normal = torch.randn(frames.shape, generator=generator, device=generator.device,
                             dtype=torch.float32)
        scale = torch.tensor(sigmas, dtype=torch.float32, device=normal.device)
        noise = (normal * scale.view(-1, 1, 1, 1, 1)).to(device=frames.device, dtype=frames.dtype)
        return frames + noise, sigmas
