"""The identity control: embeds nothing, extracts a constant grey logo."""

from __future__ import annotations

from typing import Optional

import torch

from bench.core.api import Clip, Method, Profile


class IdentityMethod(Method):
    """Control: the video is returned unchanged and extraction returns a constant 0.5 image.

    Its W-PSNR is the floor a method must beat to claim it recovers anything; its V-PSNR is
    infinite (capped) by construction.
    """

    name = "identity"
    version = "1"
    description = "control: embeds nothing, extracts a constant grey logo"

    def __init__(self, profile: Profile, device: str = "cpu"):
        self.logo_size = profile.logo_size
        self.device = device

    def embed(self, frames: torch.Tensor, logos: torch.Tensor,
              clips: Optional[list[Clip]] = None) -> torch.Tensor:
        return frames.clone()

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        b = frames.shape[0]
        return torch.full((b, 3, self.logo_size, self.logo_size), 0.5, dtype=frames.dtype,
                          device=frames.device)
