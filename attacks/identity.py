"""The identity attack: frames pass through unchanged (the no-attack baseline)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from attacks import check_params, check_video
from bench.api import Attack, AttackParams


class Identity(Attack):
    """No distortion; the output is a copy of the input."""

    name = "identity"
    version = "1"
    family = "paper"
    description = "no distortion (the frames pass through unchanged)"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """No parameters."""

    def __init__(self, params: Optional[AttackParams] = None):
        super().__init__(params)
        check_params(self, self.params)
        self.last_info: dict = {}

    def strength(self) -> float:
        """No strength to speak of: NaN, so robustness plots have no identity curve."""
        return math.nan

    def __call__(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """frames (T, 3, H, W) in [0, 1] -> a float32 copy (T, 3, H, W)."""
        check_video(frames)
        return frames.to(torch.float32, copy=True)

    def train_form(self):
        """``(frames (B, T, 3, H, W), generator) -> frames``: returns its input."""
        return _pass_through


def _pass_through(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return frames
