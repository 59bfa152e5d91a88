"""Token orders for the Mamba blocks, as index permutations over a raster-flattened tensor.

A permutation ``perm`` (long, length T*H*W or H*W) lists raster positions in visiting order:
``tokens = flat[..., perm, :]`` reorders (B, L, C) tokens, ``tokens[..., invert(perm), :]``
puts them back. Raster = T outer, then H, then W (W fastest).
"""

from __future__ import annotations

import functools

import torch

from bench.core.api import BenchError
from methods.safe_sora.wavelet import SUBBANDS_3D


def _check_sizes(**sizes: int) -> None:
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BenchError(f"{name} must be a positive integer, got {n!r}")


def invert(perm: torch.Tensor) -> torch.Tensor:
    """The inverse permutation: ``invert(perm)[perm] == arange(len(perm))``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device, dtype=perm.dtype)
    return inv


def raster_order(t: int, h: int, w: int) -> torch.Tensor:
    """The vanilla 3D scan: identity over the raster order (T outer, H, W inner)."""
    _check_sizes(t=t, h=h, w=w)
    return torch.arange(t * h * w)


@functools.lru_cache(maxsize=32)
def _subband_order(t: int, h: int, w: int, space_first: bool) -> torch.Tensor:
    t2, h2, w2 = t // 2, h // 2, w // 2
    z = torch.arange(t2).view(t2, 1, 1)
    y = torch.arange(h2).view(1, h2, 1)
    x = torch.arange(w2).view(1, 1, w2)
    parts = []
    for name in SUBBANDS_3D:
        a, b, c = (int(letter == "H") for letter in name)
        index = ((a * t2 + z) * h + (b * h2 + y)) * w + (c * w2 + x)  # (t2, h2, w2)
        parts.append(index.reshape(-1) if space_first else index.permute(1, 2, 0).reshape(-1))
    return torch.cat(parts)


def subband_order(t: int, h: int, w: int, space_first: bool = True) -> torch.Tensor:
    """Subband-by-subband scan of a ``dwt3_pack``-ed (T, H, W) grid, in ``SUBBANDS_3D`` order.

    Inside a subband block (T/2, H/2, W/2): ``space_first`` visits z outer, then y, then x
    (a whole frame of the block before the next); otherwise y outer, then x, then z inner
    (all temporal positions of a pixel before the next pixel). T, H, W even (BenchError).
    """
    _check_sizes(t=t, h=h, w=w)
    if t % 2 or h % 2 or w % 2:
        raise BenchError(f"subband scan needs even T, H, W, got {(t, h, w)}")
    return _subband_order(t, h, w, bool(space_first)).clone()


def local_order_2d(h: int, w: int, grid: int = 4) -> torch.Tensor:
    """A grid x grid tiling of an (H, W) raster into windows, windows in raster order, raster
    inside each window. H and W divisible by ``grid`` (BenchError)."""
    _check_sizes(h=h, w=w, grid=grid)
    if h % grid or w % grid:
        raise BenchError(f"H and W must be divisible by grid = {grid}, got {(h, w)}")
    wh, ww = h // grid, w // grid
    index = torch.arange(h * w).view(grid, wh, grid, ww)  # (window row, y, window col, x)
    return index.permute(0, 2, 1, 3).reshape(-1)
