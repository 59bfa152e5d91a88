"""Coarse-to-fine adaptive patch matching (CFAPM) and the per-frame watermark canvas.

The n = T * R logo patches are spread over T frames of R = rows * cols regions each; the
global slot of (frame t, region r = row * cols + col) is t * R + r. The coarse stage (router)
sends each patch to a frame, the fine stage (matcher) to a region of that frame. Each frame's
canvas is (C, rows * p, cols * p) with the patch of region (row, col) at rows row * p ...,
columns col * p ....
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from bench.core.api import BenchError
from methods.safe_sora.recovery import reassemble


def frame_latents(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """frames (B, T, 3, H, W) in [0, 1] -> (B, T, 4, H / f, W / f) in [-1, 1].

    The stand-in for a generator's VAE latent when a source gives none (a fixed encoding,
    nothing learned): per f x f block, channels 0-2 are the block's mean RGB mapped to
    [-1, 1]; channel 3 is texture, the block's luma (BT.601) population standard deviation
    x 4, clamped to [0, 1], mapped to [-1, 1].
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise BenchError(f"latent factor must be a positive integer, got {factor!r}")
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise BenchError(f"frames must be (B, T, 3, H, W), got shape {tuple(frames.shape)}")
    b, t, _, h, w = frames.shape
    if h % factor or w % factor:
        raise BenchError(f"frame size {h}x{w} is not divisible by the latent factor {factor}")
    x = frames.reshape(b * t, 3, h, w)
    pool = nn.functional.avg_pool2d
    rgb = pool(x, factor)
    luma = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    mean = pool(luma, factor)
    var = (pool(luma * luma, factor) - mean * mean).clamp_min(0)
    texture = (var.sqrt() * 4).clamp(0, 1)
    out = torch.cat([rgb, texture], dim=1) * 2 - 1
    return out.reshape(b, t, 4, h // factor, w // factor)


class _Encoder(nn.Module):
    """Conv2d(c -> width, 3x3, padding 1) + ReLU + global average pool: (N, c, h, w) -> (N,
    width). Weight and bias are buffers drawn from ``generator`` like PyTorch's default Conv2d
    initialisation (uniform, bound 1 / sqrt(9 c)): stored in the state dict, never trained."""

    def __init__(self, channels: int, width: int, generator: torch.Generator):
        super().__init__()
        bound = 1 / math.sqrt(channels * 9)
        weight = (torch.rand(width, channels, 3, 3, generator=generator) * 2 - 1) * bound
        bias = (torch.rand(width, generator=generator) * 2 - 1) * bound
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.conv2d(x.to(self.weight.dtype), self.weight, self.bias, padding=1)
        return torch.relu(y).mean(dim=(-2, -1))


def _greedy(scores: torch.Tensor, capacity: int) -> list[int]:
    """scores (n, m) -> the column each row takes: all (row, column) pairs in descending score
    (ties by row, then column), a pair taken when its row is free and its column holds fewer
    than ``capacity`` rows. Needs n <= m * capacity."""
    n, m = scores.shape
    order = torch.argsort(scores.reshape(-1), descending=True, stable=True).tolist()
    taken = [-1] * n
    load = [0] * m
    left = n
    for k in order:
        i, j = divmod(k, m)
        if taken[i] < 0 and load[j] < capacity:
            taken[i] = j
            load[j] += 1
            left -= 1
            if left == 0:
                break
    return taken


class PatchMatcher(nn.Module):
    """CFAPM: latent frames (B, T, Cl, h, w) and patches (B, n, Cp, p, p) -> slot long (B, n).

    Coarse (router): Conv2d(-> ``coarse_width``) + ReLU + GAP features of every latent frame
    and every patch, dot-product scores, softmax over frames, greedy over all (patch, frame)
    pairs in descending score with at most R patches per frame. Fine (matcher): each frame's
    latent split exactly into rows x cols regions (h, w divisible by rows, cols), features by
    Conv2d(-> ``fine_width``) + ReLU + GAP encoders, patch-region dot products, greedy in
    descending score, one patch per region. Ties go to the lower patch, then frame / region.

    Variants: ``coarse=False`` no matching at all, slot = patch index ("w/o CFAPM");
    ``latent_routing=False`` patch i goes to frame i // R, the fine stage still matches
    ("w/o RtL"); ``fine=False`` a frame's patches take its regions in ascending patch order
    ("w/o FS").

    Assignment goes through sorting, so no gradient reaches the encoders. As in the released
    code they keep their random initialisation (drawn from ``seed``, independent of the global
    RNG), held as buffers: no parameters for the optimiser, yet stored in the checkpoint and
    moved with ``.to(device)``. The output is deterministic for the same inputs.
    """

    def __init__(self, frames_per_clip: int, regions: tuple[int, int] = (4, 8),
                 latent_channels: int = 4, patch_channels: int = 4, coarse_width: int = 128,
                 fine_width: int = 64, coarse: bool = True, fine: bool = True,
                 latent_routing: bool = True, seed: int = 0):
        super().__init__()
        for name, value in (("frames_per_clip", frames_per_clip),
                            ("latent_channels", latent_channels),
                            ("patch_channels", patch_channels), ("coarse_width", coarse_width),
                            ("fine_width", fine_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BenchError(f"{name} must be a positive integer, got {value!r}")
        if (not isinstance(regions, (tuple, list)) or len(regions) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                           for v in regions)):
            raise BenchError(f"regions must be (rows, cols) of positive integers, got {regions!r}")
        self.frames_per_clip = frames_per_clip
        self.rows, self.cols = int(regions[0]), int(regions[1])
        self.regions_per_frame = self.rows * self.cols
        self.n_slots = frames_per_clip * self.regions_per_frame
        self.latent_channels = latent_channels
        self.patch_channels = patch_channels
        self.coarse, self.fine, self.latent_routing = bool(coarse), bool(fine), bool(latent_routing)
        gen = torch.Generator().manual_seed(seed)
        self.coarse_latent = _Encoder(latent_channels, coarse_width, gen)
        self.coarse_patch = _Encoder(patch_channels, coarse_width, gen)
        self.fine_latent = _Encoder(latent_channels, fine_width, gen)
        self.fine_patch = _Encoder(patch_channels, fine_width, gen)

    def extra_repr(self) -> str:
        return (f"frames_per_clip={self.frames_per_clip}, regions=({self.rows}, {self.cols}), "
                f"coarse={self.coarse}, fine={self.fine}, latent_routing={self.latent_routing}")

    def _check(self, latents: torch.Tensor, patches: torch.Tensor) -> None:
        if latents.dim() != 5 or latents.shape[1:3] != (self.frames_per_clip,
                                                        self.latent_channels):
            raise BenchError(f"latents must be (B, {self.frames_per_clip}, "
                             f"{self.latent_channels}, h, w), got {tuple(latents.shape)}")
        if patches.dim() != 5 or patches.shape[2] != self.patch_channels:
            raise BenchError(f"patches must be (B, n, {self.patch_channels}, p, p), got "
                             f"{tuple(patches.shape)}")
        if patches.shape[0] != latents.shape[0]:
            raise BenchError(f"batch sizes differ: {latents.shape[0]} latents, "
                             f"{patches.shape[0]} patch sets")
        if patches.shape[1] != self.n_slots:
            raise BenchError(f"{patches.shape[1]} patches do not fill {self.frames_per_clip} "
                             f"frames x {self.regions_per_frame} regions = {self.n_slots} slots")
        h, w = latents.shape[-2:]
        if h % self.rows or w % self.cols:
            raise BenchError(f"latent size {h}x{w} cannot be split into {self.rows}x{self.cols} "
                             f"regions")

    @torch.no_grad()
    def coarse_scores(self, latents: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """(B, T, Cl, h, w), (B, n, Cp, p, p) -> (B, n, T): softmax over frames of the
        patch-frame dot products of the router features."""
        b, t = latents.shape[:2]
        n = patches.shape[1]
        frame = self.coarse_latent(latents.flatten(0, 1)).reshape(b, t, -1)
        patch = self.coarse_patch(patches.flatten(0, 1)).reshape(b, n, -1)
        return torch.softmax(patch @ frame.transpose(1, 2), dim=-1)

    @torch.no_grad()
    def fine_scores(self, latents: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """(B, T, Cl, h, w), (B, n, Cp, p, p) -> (B, n, T, R): dot products of every patch's
        matcher features with every region's (region r = row * cols + col)."""
        b, t, c, h, w = latents.shape
        n = patches.shape[1]
        rh, rw = h // self.rows, w // self.cols
        regions = latents.reshape(b, t, c, self.rows, rh, self.cols, rw)
        regions = regions.permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, c, rh, rw)
        region = self.fine_latent(regions).reshape(b, t * self.regions_per_frame, -1)
        patch = self.fine_patch(patches.flatten(0, 1)).reshape(b, n, -1)
        return (patch @ region.transpose(1, 2)).reshape(b, n, t, self.regions_per_frame)

    @torch.no_grad()
    def forward(self, latents: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """latents (B, T, Cl, h, w), patches (B, n = T * R, Cp, p, p) -> slot long (B, n),
        a permutation of range(n) per row; slot = frame * R + region."""
        self._check(latents, patches)
        b, n = patches.shape[:2]
        t, r = self.frames_per_clip, self.regions_per_frame
        device = patches.device
        if not self.coarse:
            return torch.arange(n, device=device).expand(b, n).clone()
        if self.latent_routing:
            frames = [_greedy(s, r) for s in self.coarse_scores(latents, patches).cpu()]
        else:
            frames = [[i // r for i in range(n)]] * b
        fine: Optional[torch.Tensor] = None
        if self.fine:
            fine = self.fine_scores(latents, patches).cpu()
        slots = []
        for k in range(b):
            slot = [-1] * n
            for f in range(t):
                members = [i for i in range(n) if frames[k][i] == f]  # ascending patch order
                if fine is None:
                    places = list(range(len(members)))
                else:
                    places = _greedy(fine[k, members, f], 1)
                for i, region in zip(members, places, strict=True):
                    slot[i] = f * r + region
            slots.append(slot)
        return torch.tensor(slots, dtype=torch.long, device=device).reshape(b, n)


def _check_grid(t: int, regions: tuple[int, int]) -> tuple[int, int, int]:
    rows, cols = regions
    if min(t, rows, cols) < 1:
        raise BenchError(f"frames and regions must be positive, got T={t}, regions={regions}")
    return rows, cols, t * rows * cols


def canvas_from_patches(patches: torch.Tensor, slot: torch.Tensor, frames_per_clip: int,
                        regions: tuple[int, int]) -> torch.Tensor:
    """patches (B, n, C, p, p), slot long (B, n) a permutation -> canvas (B, T, C, rows * p,
    cols * p) with patch i at slot[i]. Differentiable with respect to the patches."""
    rows, cols, n = _check_grid(frames_per_clip, regions)
    if patches.dim() != 5 or patches.shape[1] != n or patches.shape[-1] != patches.shape[-2]:
        raise BenchError(f"patches must be (B, {n}, C, p, p) for {frames_per_clip} frames x "
                         f"{rows}x{cols} regions, got {tuple(patches.shape)}")
    b, _, c, p, _ = patches.shape
    placed = reassemble(patches, slot)  # slot order
    canvas = placed.reshape(b, frames_per_clip, rows, cols, c, p, p).permute(0, 1, 4, 2, 5, 3, 6)
    return canvas.reshape(b, frames_per_clip, c, rows * p, cols * p)


def patches_at_slots(canvas: torch.Tensor, frames_per_clip: int, regions: tuple[int, int],
                     patch: int) -> torch.Tensor:
    """canvas (B, T, C, rows * p, cols * p) -> (B, T * R, C, p, p): every slot's content in
    slot order. Differentiable."""
    rows, cols, n = _check_grid(frames_per_clip, regions)
    expected = (frames_per_clip, rows * patch, cols * patch)
    if canvas.dim() != 5 or (canvas.shape[1], *canvas.shape[3:]) != expected:
        raise BenchError(f"canvas must be (B, {frames_per_clip}, C, {rows * patch}, "
                         f"{cols * patch}), got {tuple(canvas.shape)}")
    b, t, c = canvas.shape[:3]
    x = canvas.reshape(b, t, c, rows, patch, cols, patch).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, n, c, patch, patch)


def patches_from_canvas(canvas: torch.Tensor, slot: torch.Tensor, frames_per_clip: int,
                        regions: tuple[int, int]) -> torch.Tensor:
    """canvas (B, T, C, rows * p, cols * p), slot long (B, n) -> (B, n, C, p, p): patch i is
    the canvas content at slot[i] (slots in [0, T * R); repeats allowed). Differentiable."""
    rows, cols, n = _check_grid(frames_per_clip, regions)
    if canvas.dim() != 5 or canvas.shape[-2] % rows:
        raise BenchError(f"canvas height must be a multiple of {rows}, got "
                         f"{tuple(canvas.shape)}")
    p = canvas.shape[-2] // rows
    cells = patches_at_slots(canvas, frames_per_clip, regions, p)
    if slot.dim() != 2 or slot.shape[0] != canvas.shape[0] or slot.dtype != torch.long:
        raise BenchError(f"slot must be long (B, n) with B = {canvas.shape[0]}, got "
                         f"{slot.dtype} {tuple(slot.shape)}")
    if slot.numel() and (int(slot.min()) < 0 or int(slot.max()) >= n):
        raise BenchError(f"slot values must lie in [0, {n})")
    view = slot.to(canvas.device).reshape(*slot.shape, 1, 1, 1).expand(-1, -1, *cells.shape[2:])
    return torch.gather(cells, 1, view)

