"""Video helpers every package may import (it imports only torch and ``bench.core.api``).

A video is ``float32 (T, 3, H, W)`` in [0, 1]; batches add a leading ``B``. Stored and
decoded videos are 8-bit: ``uint8`` code values 0-255, value ``v`` standing for ``v / 255``.
"""

from __future__ import annotations

import torch

from bench.core.api import BenchError


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """float frames (any shape) -> uint8 code values: clamped to [0, 1], x255, rounded."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8)


def from_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 code values (any shape) -> float32 in [0, 1] (``pixels / 255``)."""
    return pixels.to(torch.float32) / 255


def quantise(frames: torch.Tensor) -> torch.Tensor:
    """float frames -> the nearest 8-bit levels (``to_uint8`` / 255), in the input's dtype."""
    return (frames.clamp(0, 1) * 255).round() / 255


def pad_to_even(pixels: torch.Tensor) -> torch.Tensor:
    """frames (T, C, H, W) -> (T, C, H', W') with H', W' even, the last row / column repeated
    (4:2:0 chroma needs even sides); the input's dtype, uint8 included."""
    pad_h, pad_w = pixels.shape[-2] % 2, pixels.shape[-1] % 2
    if not (pad_h or pad_w):
        return pixels
    padded = torch.nn.functional.pad(pixels.float(), (0, pad_w, 0, pad_h), mode="replicate")
    return padded.to(pixels.dtype)


def check_video(frames, what: str = "frames", batched: bool = False,
                floating: bool = True) -> None:
    """Raise ``BenchError`` unless ``frames`` is a tensor (T, 3, H, W), or (B, T, 3, H, W)
    when ``batched``, of a float dtype when ``floating``. ``what`` starts the message."""
    shape = "(B, T, 3, H, W)" if batched else "(T, 3, H, W)"
    kind = "float tensor" if floating else "tensor"
    if not isinstance(frames, torch.Tensor) or (floating and not frames.is_floating_point()):
        raise BenchError(f"{what} must be a {kind} {shape}, got {type(frames)}")
    if frames.ndim != (5 if batched else 4) or frames.shape[-3] != 3:
        raise BenchError(f"{what} must have shape {shape}, got {tuple(frames.shape)}")
