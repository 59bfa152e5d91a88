"""DCT-QIM: a classical, blind, keyed graphical watermark (no weights).

The logo's pixels (in YCbCr, all at full resolution) are carried as analog values by dither
modulation (scalar QIM) of low-frequency 8x8 block-DCT coefficients of the video's luma. A
keyed permutation spreads the copies of each logo value over all frames and blocks, and a keyed
dither makes extraction impossible without the key. Extraction is blind: the phase of each
carrier inside its quantisation cell is read back, the copies of a value are combined by a
circular mean, and the value is shrunk towards mid-grey by the copies' agreement (the mean
resultant length), so a destroyed mark decays to grey, not to noise.

Value -> phase: ``phi = 0.2 + 0.6 v`` inside the cell, so black and white stay 0.4 cells
apart around the circle (noise must move a carrier by 0.2 * step to wrap one into the other).
Distortion: uniform on the used coefficients, MSE ~ K/64 * step^2 / 12 per luma pixel.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import torch
import torch.nn.functional as F

from bench.core.api import BenchError, Clip, Method, Profile

# BT.601 full-range RGB -> YCbCr (offsets 0, 0.5, 0.5)
_RGB2YCC = torch.tensor([[0.299, 0.587, 0.114],
                         [-0.168736, -0.331264, 0.5],
                         [0.5, -0.418688, -0.081312]], dtype=torch.float64)
_YCC2RGB = torch.linalg.inv(_RGB2YCC)
_OFFSET = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)

# zig-zag positions 1..15 of an 8x8 block (the lowest frequencies after DC)
_ZIGZAG = [(0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0),
           (3, 1), (2, 2), (1, 3), (0, 4), (0, 5)]
BLOCK = 8


def rgb_to_ycc(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> YCbCr with Cb, Cr centred on 0.5."""
    m = _RGB2YCC.to(x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x) + _OFFSET.to(x.dtype)[:, None, None]


def ycc_to_rgb(x: torch.Tensor) -> torch.Tensor:
    m = _YCC2RGB.to(x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x - _OFFSET.to(x.dtype)[:, None, None])


@lru_cache(maxsize=None)
def _dct_matrix(n: int = BLOCK) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n, n): coefficients = D @ block @ D.T."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def _blocks(y: torch.Tensor) -> torch.Tensor:
    """(T, H, W) -> (T, H/8, W/8, 8, 8)."""
    t, h, w = y.shape
    return y.reshape(t, h // BLOCK, BLOCK, w // BLOCK, BLOCK).permute(0, 1, 3, 2, 4)


def _unblocks(b: torch.Tensor) -> torch.Tensor:
    t, nby, nbx, _, _ = b.shape
    return b.permute(0, 1, 3, 2, 4).reshape(t, nby * BLOCK, nbx * BLOCK)


class DctQimMethod(Method):
    """Blind keyed DCT-domain QIM of the logo's pixels, spread over frames."""

    name = "dct-qim"
    version = "2"
    description = "classical blind watermark: keyed QIM of block-DCT luma coefficients"

    def __init__(self, profile: Profile, device: str = "cpu", key: int = 20250518,
                 step: float = 0.09):
        self.logo_size = profile.logo_size
        self.device = device
        self.key = key
        self.step = step

    # -- carriers ---------------------------------------------------------------------------
    def _layout(self, t: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keyed carrier -> payload assignment (-1: unused) and dither, both (n_carriers,)."""
        n_carriers = t * (h // BLOCK) * (w // BLOCK) * len(_ZIGZAG)
        n_payload = self._payload_size()
        copies = n_carriers // n_payload
        if copies < 1:
            raise BenchError(
                f"dct-qim: a {t}x{h}x{w} video has {n_carriers} carriers, fewer than the "
                f"{n_payload} logo values to hide")
        gen = torch.Generator().manual_seed(self.key)
        perm = torch.randperm(n_carriers, generator=gen)
        dither = torch.rand(n_carriers, generator=gen, dtype=torch.float64)
        assign = torch.full((n_carriers,), -1, dtype=torch.long)
        assign[perm[: copies * n_payload]] = torch.arange(copies * n_payload) % n_payload
        return assign, dither

    def _payload_size(self) -> int:
        return 3 * self.logo_size ** 2

    def _coefficients(self, y: torch.Tensor) -> torch.Tensor:
        """Luma (T, H8, W8) -> block DCT (T, nby, nbx, 8, 8), float64."""
        d = _dct_matrix()
        return d @ _blocks(y) @ d.T

    def _crop(self, frames: torch.Tensor) -> tuple[int, int]:
        h, w = frames.shape[-2:]
        return h - h % BLOCK, w - w % BLOCK

    # -- payload ----------------------------------------------------------------------------
    def _logo_to_payload(self, logo: torch.Tensor) -> torch.Tensor:
        """(3, s, s) RGB -> (3 * s * s,) YCbCr values in [0, 1]."""
        if logo.shape[-2:] != (self.logo_size, self.logo_size):
            logo = F.interpolate(logo[None], size=(self.logo_size,) * 2, mode="bilinear",
                                 antialias=True, align_corners=False)[0]
        return rgb_to_ycc(logo.double().clamp(0, 1)).flatten().clamp(0, 1)

    def _payload_to_logo(self, payload: torch.Tensor) -> torch.Tensor:
        s = self.logo_size
        return ycc_to_rgb(payload.reshape(3, s, s)).clamp(0, 1)

    # -- contract ---------------------------------------------------------------------------
    def embed(self, frames: torch.Tensor, logos: torch.Tensor,
              clips: Optional[list[Clip]] = None) -> torch.Tensor:
        return torch.stack([self._embed_one(v, l) for v, l in zip(frames, logos, strict=True)])

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._extract_one(v) for v in frames])

    def _embed_one(self, video: torch.Tensor, logo: torch.Tensor) -> torch.Tensor:
        t = video.shape[0]
        h, w = self._crop(video)
        x = video.double()
        y = rgb_to_ycc(x[..., :h, :w])[:, 0]
        coef = self._coefficients(y)
        assign, dither = self._layout(t, h, w)
        carriers = torch.stack([coef[..., i, j] for i, j in _ZIGZAG], dim=-1).flatten()
        used = assign >= 0
        phase = 0.2 + 0.6 * self._logo_to_payload(logo.cpu())[assign[used]]
        c = carriers[used] / self.step
        offset = phase + dither[used]
        carriers = carriers.clone()
        carriers[used] = self.step * (torch.round(c - offset) + offset)
        carriers = carriers.reshape(*coef.shape[:3], len(_ZIGZAG))
        for k, (i, j) in enumerate(_ZIGZAG):
            coef[..., i, j] = carriers[..., k]
        d = _dct_matrix()
        new_y = _unblocks(d.T @ coef @ d)
        out = x.clone()
        out[..., :h, :w] = x[..., :h, :w] + (new_y - y)[:, None]  # luma shift on R, G and B
        return out.clamp(0, 1).to(video.dtype)

    def _extract_one(self, video: torch.Tensor) -> torch.Tensor:
        t = video.shape[0]
        h, w = self._crop(video)
        y = rgb_to_ycc(video.double()[..., :h, :w])[:, 0]
        coef = self._coefficients(y)
        assign, dither = self._layout(t, h, w)
        carriers = torch.stack([coef[..., i, j] for i, j in _ZIGZAG], dim=-1).flatten()
        used = assign >= 0
        phase = torch.remainder(carriers[used] / self.step - dither[used], 1.0)
        angle = 2 * math.pi * phase
        n = self._payload_size()
        cos = torch.zeros(n, dtype=torch.float64).index_add_(0, assign[used], torch.cos(angle))
        sin = torch.zeros(n, dtype=torch.float64).index_add_(0, assign[used], torch.sin(angle))
        mean_phase = torch.remainder(torch.atan2(sin, cos) / (2 * math.pi), 1.0)
        counts = torch.zeros(n, dtype=torch.float64).index_add_(
            0, assign[used], torch.ones_like(angle))
        agreement = torch.sqrt(cos**2 + sin**2) / counts.clamp(min=1)  # 1: copies agree
        payload = ((mean_phase - 0.2) / 0.6).clamp(0, 1)
        # copies that disagree carry little information: shrink towards mid-grey
        payload = 0.5 + agreement * (payload - 0.5)
        return self._payload_to_logo(payload).to(video.dtype).to(video.device)
