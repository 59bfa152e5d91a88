"""Gaussian blur per frame with an odd kernel size (the paper evaluates k = 3, 5, 7).

Unless given, ``sigma`` follows OpenCV's rule for a kernel size k:
``sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8`` (k = 3, 5, 7 -> 0.8, 1.1, 1.4 pixels). The kernel
is separable, normalised to sum 1, and borders are reflected without repeating the edge pixel
(OpenCV's default ``BORDER_REFLECT_101``, torch's ``reflect``). Deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from attacks.batched import BatchedAttack
from bench.core.api import AttackParams, BenchError, param


def opencv_sigma(kernel: int) -> float:
    """The Gaussian std (pixels) OpenCV uses for a kernel size when sigma is not given."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def gaussian_kernel1d(kernel: int, sigma: float) -> torch.Tensor:
    """float64 (kernel,) Gaussian weights of std ``sigma`` centred on the middle tap, sum 1."""
    offsets = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def gaussian_blur(images: torch.Tensor, kernel: int, sigma: float) -> torch.Tensor:
    """images (..., C, H, W) -> blurred (..., C, H, W), same dtype; differentiable."""
    height, width = images.shape[-2:]
    pad = kernel // 2
    if pad >= min(height, width):
        raise BenchError(f"blur kernel {kernel} needs frames larger than {pad} pixels, "
                         f"got {height}x{width}")
    flat = images.reshape(-1, 1, height, width)
    weights = gaussian_kernel1d(kernel, sigma).to(device=images.device, dtype=images.dtype)
    flat = F.pad(flat, (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, weights.view(1, 1, 1, kernel))
    flat = F.conv2d(flat, weights.view(1, 1, kernel, 1))
    return flat.reshape(images.shape)


def parse_kernel(value, name: str) -> int:
    """An odd positive kernel size in pixels (a whole float is accepted); else BenchError."""
    kernel = value
    if isinstance(kernel, float) and kernel.is_integer():
        kernel = int(kernel)
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise BenchError(f"{name} must be an odd positive integer, got {kernel!r}")
    return kernel


def parse_sigma(value, name: str) -> Optional[float]:
    """None, or a positive finite std in pixels as a float; else BenchError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise BenchError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class Blur(BatchedAttack):
    """Gaussian blur of every frame (separable convolution, reflected borders)."""

    name = "blur"
    version = "1"
    family = "paper"
    description = "Gaussian blur per frame, odd `kernel` size, OpenCV's sigma unless given"

    @dataclass(frozen=True)
    class Params(AttackParams):
        """``kernel``: odd size in pixels; ``sigma``: std in pixels (None: OpenCV's rule)."""

        kernel: int = param(5, parse_kernel, "blur kernel")
        sigma: Optional[float] = param(None, parse_sigma, "blur sigma")

        def canonical_args(self) -> str:
            """``kernel=5``; ``sigma`` appears only when given explicitly."""
            args = super().canonical_args()
            return args if self.sigma is not None else f"kernel={self.kernel}"

        @property
        def effective_sigma(self) -> float:
            return self.sigma if self.sigma is not None else opencv_sigma(self.kernel)

    @classmethod
    def grid(cls) -> list[AttackParams]:
        return [cls.default_params()] + [cls.Params(kernel=k) for k in (3, 7)]

    def strength(self) -> float:
        return float(self.params.kernel)

    def apply(self, frames, generator):
        """Deterministic: the same convolution in both forms, no randomness drawn."""
        out = gaussian_blur(frames, self.params.kernel, self.params.effective_sigma)
        return out, [{} for _ in frames]
