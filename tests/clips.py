"""Small synthetic clips and a PSNR shared by the attack tests (made here, not rendered)."""

from __future__ import annotations

import math

import torch


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniform_clip(t: int, h: int, w: int, seed: int = 0, low: float = 0.0,
                 high: float = 1.0) -> torch.Tensor:
    """float32 (T, 3, H, W) uniform in [low, high]; every frame different."""
    return torch.rand(t, 3, h, w, generator=seeded(seed)) * (high - low) + low


def smooth_clip(t: int = 8, h: int = 32, w: int = 48) -> torch.Tensor:
    """float32 (T, 3, H, W): slowly moving colour gradients in [0.1, 0.9]."""
    ys = torch.linspace(0, 1, h)[:, None]
    xs = torch.linspace(0, 1, w)[None, :]
    frames = []
    for i in range(t):
        shift = 0.03 * i
        frames.append(torch.stack([
            0.5 + 0.4 * torch.sin(2 * math.pi * (xs + shift)) * torch.ones_like(ys),
            0.5 + 0.4 * torch.cos(2 * math.pi * (ys - shift)) * torch.ones_like(xs),
            0.5 + 0.4 * torch.sin(math.pi * (xs + ys + shift)),
        ]))
    return torch.stack(frames).float()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two tensors on [0, 1], in float64."""
    return float(10 * torch.log10(1.0 / ((a.double() - b.double()) ** 2).mean()))


def seeded_output(attack, frames: torch.Tensor, seed: int = 7) -> torch.Tensor:
    """``attack(frames)`` under ``seed``, checked: the same output twice, the input left as it
    was, the input's shape, float32 values in [0, 1]."""
    before = frames.clone()
    first, second = attack(frames, seeded(seed)), attack(frames, seeded(seed))
    assert torch.equal(frames, before), "input modified in place"
    assert torch.equal(first, second), "same seed, different output"
    assert first.shape == frames.shape and first.dtype == torch.float32
    assert first.min() >= 0 and first.max() <= 1
    return first
