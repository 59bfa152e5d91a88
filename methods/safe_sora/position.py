"""Logo patches and their position channels (Safe-Sora's patch coding).

A square logo (B, 3, S, S) is cut into n = (S / p)^2 patches of p x p in raster order. Each
patch gets a fourth channel that spells its index i as ``position_bits(n)`` bits, least
significant first, each bit repeated over a contiguous run of the p * p pixels (raster order)
and written as -1 (bit 0) or +1 (bit 1). For p = 16 and n = 256 (8 bits) bit j fills rows 2j
and 2j + 1 of the patch, the paper's layout.
"""

from __future__ import annotations

import math

import torch

from bench.core.api import BenchError


def _check_patch(patch: int) -> int:
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise BenchError(f"patch size must be a positive integer, got {patch!r}")
    return patch


def patchify(logos: torch.Tensor, patch: int) -> torch.Tensor:
    """logos (B, C, S, S) -> patches (B, n, C, p, p), raster order, n = (S / p)^2."""
    p = _check_patch(patch)
    if logos.dim() != 4:
        raise BenchError(f"logos must be (B, C, S, S), got shape {tuple(logos.shape)}")
    b, c, h, w = logos.shape
    if h != w:
        raise BenchError(f"logos must be square, got {h}x{w}")
    if h % p:
        raise BenchError(f"logo size {h} is not divisible by the patch size {p}")
    g = h // p
    x = logos.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, g * g, c, p, p)


def unpatchify(patches: torch.Tensor) -> torch.Tensor:
    """patches (B, n, C, p, p), raster order, n a perfect square -> logos (B, C, S, S)."""
    if patches.dim() != 5 or patches.shape[-1] != patches.shape[-2]:
        raise BenchError(f"patches must be (B, n, C, p, p), got shape {tuple(patches.shape)}")
    b, n, c, p, _ = patches.shape
    g = math.isqrt(n)
    if g * g != n:
        raise BenchError(f"{n} patches do not form a square grid")
    x = patches.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, g * p, g * p)


def position_bits(n: int) -> int:
    """Bits needed to name n patches: max(1, ceil(log2 n))."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BenchError(f"number of patches must be a positive integer, got {n!r}")
    return max(1, (n - 1).bit_length())


def bit_of_value(n: int, patch: int) -> torch.Tensor:
    """long (p * p,): which bit each of the patch's values (raster order) carries.

    Value k carries bit floor(k * bits / (p * p)): contiguous runs of equal length (+-1).
    """
    p = _check_patch(patch)
    bits = position_bits(n)
    if p * p < bits:
        raise BenchError(f"a {p}x{p} patch has fewer values than the {bits} position bits "
                         f"needed for {n} patches")
    return torch.arange(p * p, dtype=torch.long) * bits // (p * p)


def position_channel(n: int, patch: int) -> torch.Tensor:
    """float32 (n, 1, p, p) in {-1, +1}: patch i's index, LSB first (see ``bit_of_value``)."""
    p = _check_patch(patch)
    which = bit_of_value(n, p)
    index = torch.arange(n, dtype=torch.long)
    bit = (index[:, None] >> which[None, :]) & 1
    return (bit.to(torch.float32) * 2 - 1).reshape(n, 1, p, p)


def with_positions(logos: torch.Tensor, patch: int) -> torch.Tensor:
    """logos (B, 3, S, S) in [0, 1] -> (B, n, 4, p, p): RGB mapped to [-1, 1] + position."""
    if logos.dim() != 4 or logos.shape[1] != 3:
        raise BenchError(f"logos must be (B, 3, S, S), got shape {tuple(logos.shape)}")
    rgb = patchify(logos, patch) * 2 - 1
    b, n = rgb.shape[:2]
    pos = position_channel(n, patch).to(device=rgb.device, dtype=rgb.dtype)
    return torch.cat([rgb, pos.unsqueeze(0).expand(b, -1, -1, -1, -1)], dim=2)


def bit_probabilities(pos: torch.Tensor) -> torch.Tensor:
    """pos (B, n, p, p) -> (B, n, bits): per bit, mean over its copies of (clamp(v) + 1) / 2."""
    if pos.dim() != 4 or pos.shape[-1] != pos.shape[-2]:
        raise BenchError(f"position channels must be (B, n, p, p), got {tuple(pos.shape)}")
    b, n, p, _ = pos.shape
    which = bit_of_value(n, p).to(pos.device)
    bits = position_bits(n)
    onehot = torch.nn.functional.one_hot(which, bits).to(pos.dtype)
    average = onehot / onehot.sum(dim=0, keepdim=True)
    prob = (pos.clamp(-1, 1).reshape(b, n, p * p) + 1) / 2
    return prob @ average


def decode_positions(pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pos (B, n, p, p) -> (index long (B, n), confidence float (B, n) in [0, 0.5]).

    A bit is 1 where its probability exceeds 0.5; the index is read LSB first (it may reach
    2^bits - 1 >= n). Confidence is the mean over bits of |probability - 0.5|.
    """
    prob = bit_probabilities(pos)
    bit = (prob > 0.5).to(torch.long)
    weight = 2 ** torch.arange(prob.shape[-1], dtype=torch.long, device=pos.device)
    index = (bit * weight).sum(dim=-1)
    confidence = (prob - 0.5).abs().mean(dim=-1)
    return index, confidence
