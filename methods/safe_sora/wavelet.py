"""Haar wavelet transforms laid out as same-size tensors (pytorch-wavelets, mode "zero").

Subbands are named by letters, one per axis (L = low-pass, H = high-pass), and a subband's block
sits where its letters say: L = first half, H = second half along that axis.

* 2D (``dwt2_pack``): letters in (height, width) order. One level of an (H, W) image gives the
  canvas [[LL, LH], [HL, HH]] of four H/2 x W/2 blocks (LH = high-pass along width, top right;
  HL = high-pass along height, bottom left); further levels recurse into the LL block.
* 3D (``dwt3_pack``): a 1D Haar DWT along time (a butterfly with the numbers of
  pytorch-wavelets' ``DWT1DForward``), then the 2D DWT of each temporal band; letters in
  (time, height, width) order; the eight T/2 x H/2 x W/2 subbands are the octants of the
  packed tensor.

The Haar transform is orthonormal: packing preserves the sum of squares, and the inverse is
exact to float rounding.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn

from bench.core.api import BenchError

with warnings.catch_warnings():  # pytorch-wavelets imports the deprecated pkg_resources
    warnings.simplefilter("ignore")
    from pytorch_wavelets import DWTForward, DWTInverse

_RSQRT2 = 2 ** -0.5
SUBBANDS_3D = ("LLL", "LLH", "LHL", "HLL", "LHH", "HLH", "HHL", "HHH")


@functools.lru_cache(maxsize=None)
def _transform(kind: str, levels: int, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A pytorch-wavelets Haar transform (its filters as buffers) on ``device`` in ``dtype``.

    The filters are built in float64 (pytorch-wavelets uses the default dtype) and then cast,
    so a float64 transform is exact to float64 rounding.
    """
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        if kind == "dwt2":
            module = DWTForward(J=levels, wave="haar", mode="zero")
        else:
            module = DWTInverse(wave="haar", mode="zero")
    finally:
        torch.set_default_dtype(default)
    return module.to(device=device, dtype=dtype)


def _float32(value):
    if isinstance(value, torch.Tensor):
        return value.float()
    return type(value)(_float32(v) for v in value)


def _apply(kind: str, like: torch.Tensor, inputs, levels: int = 1):
    """pytorch-wavelets' ``kind`` transform of ``inputs`` (a tensor, or ``(ll, highs)``).

    Its autograd functions do not follow autocast, so under autocast the (exact, linear)
    Haar transform runs outside it in float32."""
    device = like.device.type
    if torch.is_autocast_enabled(device):
        with torch.autocast(device, enabled=False):
            return _transform(kind, levels, like.device, torch.float32)(_float32(inputs))
    return _transform(kind, levels, like.device, like.dtype)(inputs)


def _check_2d(x: torch.Tensor, levels: int) -> None:
    if x.dim() != 4:
        raise BenchError(f"expected (N, C, H, W), got shape {tuple(x.shape)}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise BenchError(f"levels must be a positive integer, got {levels!r}")
    step = 2 ** levels
    if x.shape[-2] % step or x.shape[-1] % step:
        raise BenchError(f"H and W must be divisible by 2**levels = {step} for a {levels}-level "
                         f"DWT, got {tuple(x.shape[-2:])}")


def _quad(ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor,
          hh: torch.Tensor) -> torch.Tensor:
    """[[ll, lh], [hl, hh]] over the last two dims."""
    return torch.cat([torch.cat([ll, lh], dim=-1), torch.cat([hl, hh], dim=-1)], dim=-2)


def dwt2_pack(x: torch.Tensor, levels: int) -> torch.Tensor:
    """``levels``-level 2D Haar DWT as one canvas. x (N, C, H, W) -> (N, C, H, W).

    LL of the last level top left; at each level j the detail blocks of size H/2^j x W/2^j
    sit in the quadrants of the top-left H/2^(j-1) x W/2^(j-1) region: LH (high-pass along
    width) top right, HL (high-pass along height) bottom left, HH bottom right.
    H and W must be divisible by 2**levels (BenchError).
    """
    _check_2d(x, levels)
    ll, highs = _apply("dwt2", x, x, levels)
    # pytorch-wavelets' band order: 0 high-pass along H, 1 high-pass along W, 2 both
    for high in reversed(highs):
        ll = _quad(ll, high[:, :, 1], high[:, :, 0], high[:, :, 2])
    return ll


def idwt2_unpack(canvas: torch.Tensor, levels: int) -> torch.Tensor:
    """Inverse of ``dwt2_pack``: canvas (N, C, H, W) -> image (N, C, H, W)."""
    _check_2d(canvas, levels)
    highs = []
    ll = canvas
    for _ in range(levels):
        h, w = ll.shape[-2] // 2, ll.shape[-1] // 2
        highs.append(torch.stack([ll[..., h:, :w], ll[..., :h, w:], ll[..., h:, w:]], dim=2))
        ll = ll[..., :h, :w]
    return _apply("idwt2", canvas, (ll, highs))


def _check_3d(x: torch.Tensor) -> None:
    if x.dim() != 5:
        raise BenchError(f"expected (B, C, T, H, W), got shape {tuple(x.shape)}")
    if any(n % 2 for n in x.shape[-3:]):
        raise BenchError(f"T, H and W must be even for a 3D Haar DWT, got {tuple(x.shape[-3:])}")


def haar1d_time(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One-level Haar DWT along dim 2 of x (B, C, T, ...): (low, high), each (B, C, T/2, ...).

    low = (x_2i + x_2i+1) / sqrt(2), high = (x_2i - x_2i+1) / sqrt(2): the numbers of
    pytorch-wavelets' ``DWT1DForward(wave="haar", mode="zero")`` for even T, computed as a
    butterfly (that module runs a grouped conv1d over C*H*W length-T rows, ~10x slower here).
    """
    pairs = x.unflatten(2, (x.shape[2] // 2, 2))
    even, odd = pairs.select(3, 0), pairs.select(3, 1)
    return (even + odd) * _RSQRT2, (even - odd) * _RSQRT2


def ihaar1d_time(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of ``haar1d_time``: (B, C, T/2, ...) twice -> (B, C, T, ...)."""
    pairs = torch.stack([low + high, low - high], dim=3) * _RSQRT2
    return pairs.flatten(2, 3)


def dwt3_pack(x: torch.Tensor) -> torch.Tensor:
    """One-level 3D Haar DWT packed by octants. x (B, C, T, H, W) -> (B, C, T, H, W).

    Temporal Haar step (``haar1d_time``) then pytorch-wavelets' 2D Haar DWT of each temporal
    band. Subband ``abc`` (letters for time, height, width) fills the block
    [a * T/2 : (a+1) * T/2, b * H/2 : ..., c * W/2 : ...] with L = 0, H = 1; e.g. LLL is the
    first-half octant, HLL the second temporal half's top-left block. T, H, W even (BenchError).
    """
    _check_3d(x)
    b, c, t, h, w = x.shape
    low, high = haar1d_time(x)
    bands = torch.stack([low, high], dim=1).reshape(b, 2 * c * (t // 2), h, w)
    ll, (det,) = _apply("dwt2", bands, bands)
    # (B, height letter, width letter, time letter, C, T/2, H/2, W/2)
    blocks = torch.stack([ll, det[:, :, 1], det[:, :, 0], det[:, :, 2]], dim=1)
    blocks = blocks.reshape(b, 2, 2, 2, c, t // 2, h // 2, w // 2)
    return blocks.permute(0, 4, 3, 5, 1, 6, 2, 7).reshape(b, c, t, h, w)


def idwt3_unpack(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of ``dwt3_pack``: packed (B, C, T, H, W) -> video (B, C, T, H, W)."""
    _check_3d(packed)
    b, c, t, h, w = packed.shape
    blocks = packed.reshape(b, c, 2, t // 2, 2, h // 2, 2, w // 2).permute(0, 2, 4, 6, 1, 3, 5, 7)
    blocks = blocks.reshape(b * 2, 4, c * (t // 2), h // 2, w // 2)  # (B * time band, 2D band)
    det = torch.stack([blocks[:, 2], blocks[:, 1], blocks[:, 3]], dim=2)
    bands = _apply("idwt2", packed, (blocks[:, 0], [det]))  # (B * 2, C * T/2, H, W)
    bands = bands.reshape(b, 2, c, t // 2, h, w)
    return ihaar1d_time(bands[:, 0], bands[:, 1])
