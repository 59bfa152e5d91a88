"""Spatial-frequency Mamba blocks of Safe-Sora: ``SS2D``, ``SFMamba2D`` (embedder) and
``SFMamba3D`` (embedder bottleneck and extractor).

Depthwise convolutions run on channels-last views of the token tensors: no transposed copy of
the 4C-channel MLP activations is made, and on the CPU PyTorch's depthwise Conv3d is far faster
channels-last (forward + backward on (1, 96, 8, 64, 64): 0.15 s against 6.4 s on a contiguous
copy). ``SFMamba3D(checkpoint=True)`` trades ~30% more time for ~45% less peak memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from methods.safe_sora.mamba import BiMamba, Mamba, init_dt_bias, scan_for
from methods.safe_sora.scan import invert, local_order_2d, subband_order
from methods.safe_sora.wavelet import dwt2_pack, dwt3_pack, idwt2_unpack, idwt3_unpack

DIRECTIONS = 4  # rows, columns, rows reversed, columns reversed


class SS2D(nn.Module):
    """VMamba's 2D selective scan (expand 1). x (N, H, W, C) -> (N, H, W, C), channels last.

    in_proj C -> 2C (x and gate z); depthwise 3x3 conv + SiLU on x; four-direction cross-scan
    (rows, columns, rows reversed, columns reversed), each direction with its own selective-scan
    parameters, stacked as in VMamba (``x_proj_weight`` (4, R + 2N, C), ``dt_projs_weight``
    (4, C, R), ``dt_projs_bias`` (4, C), ``A_logs`` (4C, N), ``Ds`` (4C,); R = ceil(C / 16)),
    all four scanned in one call (B and C grouped by direction); outputs mapped back to raster
    positions and summed; out_proj(LayerNorm(y) * SiLU(z)). Initialisation as ``Mamba``.
    """

    def __init__(self, channels: int, d_state: int = 1, dt_min: float = 0.001,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4):
        super().__init__()
        c, k = channels, DIRECTIONS
        self.channels = c
        self.d_state = d_state
        self.dt_rank = math.ceil(c / 16)
        self.in_proj = nn.Linear(c, 2 * c, bias=False)
        self.conv2d = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=True)
        bound = c ** -0.5  # nn.Linear's default init for each direction's x_proj
        self.x_proj_weight = nn.Parameter(
            torch.empty(k, self.dt_rank + 2 * d_state, c).uniform_(-bound, bound))
        bound = self.dt_rank ** -0.5
        self.dt_projs_weight = nn.Parameter(
            torch.empty(k, c, self.dt_rank).uniform_(-bound, bound))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, c))
        init_dt_bias(self.dt_projs_bias, dt_min, dt_max, dt_init_floor)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k * c, 1)
        self.A_logs = nn.Parameter(torch.log(a))
        self.A_logs._no_weight_decay = True
        self.Ds = nn.Parameter(torch.ones(k * c))
        self.Ds._no_weight_decay = True
        self.out_norm = nn.LayerNorm(c)
        self.out_proj = nn.Linear(c, c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        length = h * w
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))  # (N, C, H, W), channels-last strides
        rows = x.reshape(n, c, length)
        cols = x.transpose(2, 3).reshape(n, c, length)
        xs = torch.stack([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)  # (N, 4, C, L)
        x_dbl = torch.einsum("nkcl,krc->nkrl", xs, self.x_proj_weight)
        dts, bs, cs = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("nkrl,kcr->nkcl", dts, self.dt_projs_weight)
        y = scan_for(xs)(xs.reshape(n, -1, length), dts.reshape(n, -1, length),
                         -torch.exp(self.A_logs.float()), bs.contiguous(), cs.contiguous(),
                         self.Ds.float(), delta_bias=self.dt_projs_bias.float().view(-1),
                         delta_softplus=True).view(n, DIRECTIONS, c, length)
        y_rows = y[:, 0] + y[:, 2].flip(-1)
        y_cols = (y[:, 1] + y[:, 3].flip(-1)).view(n, c, w, h).transpose(2, 3)
        y = (y_rows.view(n, c, h, w) + y_cols).permute(0, 2, 3, 1)  # (N, H, W, C)
        return self.out_proj(self.out_norm(y) * F.silu(z))


def _gather(tokens: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
    """tokens (B, L, C) reordered along L by ``order`` (None: unchanged)."""
    if order is None:
        return tokens
    return tokens.index_select(1, order.to(tokens.device))


class SFMamba2D(nn.Module):
    """2D spatial-frequency Mamba block. x (N, C, H, W) -> (N, C, H, W).

    Spatial branch: ``x * spatial_scale + SS2D(LayerNorm(x))``. Frequency branch: 2-level Haar
    ``dwt2_pack``, tokens in ``local_order_2d(H, W, local_grid)`` order,
    ``h * freq_scale + Mamba(h)`` (unidirectional, no norm), back to the canvas,
    ``idwt2_unpack``. Output ``fuse(cat(spatial, frequency))``, Linear(2C -> C), no residual.
    H and W divisible by 4 and by ``local_grid``.
    """

    def __init__(self, channels: int, d_state: int = 1, local_grid: int = 4):
        super().__init__()
        self.local_grid = local_grid
        self.norm = nn.LayerNorm(channels)
        self.ss2d = SS2D(channels, d_state)
        self.spatial_scale = nn.Parameter(torch.ones(channels))
        self.freq_mamba = Mamba(channels, d_state=d_state, expand=1)
        self.freq_scale = nn.Parameter(torch.ones(channels))
        self.fuse = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        xs = x.permute(0, 2, 3, 1)  # (N, H, W, C)
        spatial = xs * self.spatial_scale + self.ss2d(self.norm(xs))
        order = local_order_2d(h, w, self.local_grid)
        tokens = _gather(dwt2_pack(x, 2).flatten(2).transpose(1, 2), order)  # (N, L, C)
        tokens = tokens * self.freq_scale + self.freq_mamba(tokens)
        canvas = _gather(tokens, invert(order)).transpose(1, 2).reshape(n, c, h, w)
        freq = idwt2_unpack(canvas, 2).permute(0, 2, 3, 1)
        return self.fuse(torch.cat([spatial, freq], dim=-1)).permute(0, 3, 1, 2)


class _DepthwiseConv3d(torch.autograd.Function):
    """Depthwise 3x3x3 conv (padding 1) with a faster CPU backward than PyTorch's own.

    Input gradient: the forward conv with the kernel flipped; weight gradient: a grouped conv of
    the padded input with the output gradient as kernel. On (1, 96, 8, 128, 128) this backward
    takes ~0.27 s on one core against ~0.63 s for ``convolution_backward``; same numbers.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv3d(x, weight, bias, padding=1, groups=x.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    @torch.amp.custom_bwd(device_type="cpu")  # under the forward's autocast state
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        b, c = x.shape[:2]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv3d(grad, weight.flip(2, 3, 4), padding=1, groups=c)
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (1, 1, 1, 1, 1, 1)).transpose(0, 1)  # (C, B, T+2, H+2, W+2)
            grad_w = F.conv3d(padded.reshape(1, c * b, *padded.shape[2:]), grad.transpose(0, 1),
                              groups=c).view_as(weight)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum(dim=(0, 2, 3, 4))
        return grad_x, grad_w, grad_b


def depthwise_conv3d(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """``conv(x)`` for a depthwise 3x3x3 Conv3d with padding 1 and bias; x (B, C, T, H, W)."""
    if x.device.type != "cpu" or not torch.is_grad_enabled():
        return conv(x)
    return _DepthwiseConv3d.apply(x, conv.weight, conv.bias)


class ConvMLP(nn.Module):
    """Token MLP with a depthwise 3x3x3 conv on the (T, H, W) grid.

    fc1 Linear(C -> hidden), dwconv Conv3d(hidden, 3^3, groups=hidden, padding 1), GELU,
    fc2 Linear(hidden -> C). tokens (B, T*H*W, C) in raster order -> same.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.dwconv = nn.Conv3d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        b, length, _ = tokens.shape
        hidden = self.fc1(tokens).view(b, *grid, -1).permute(0, 4, 1, 2, 3)  # channels-last 3D
        hidden = self.act(depthwise_conv3d(hidden, self.dwconv))
        hidden = hidden.permute(0, 2, 3, 4, 1)  # (B, T, H, W, hidden), contiguous
        return self.fc2(hidden.reshape(b, length, -1))


class _MambaMLP(nn.Module):
    """``x + BiMamba(LN(x))`` in a scan order, back to raster, then ``x + MLP(LN(x))``.

    With ``checkpoint`` (and autograd on) each of the two residual steps keeps only its input
    for the backward pass and is recomputed there.
    """

    def __init__(self, channels: int, d_state: int, mlp_ratio: int = 4,
                 checkpoint: bool = False):
        super().__init__()
        self.checkpoint = checkpoint
        self.norm1 = nn.LayerNorm(channels)
        self.mamba = BiMamba(channels, d_state=d_state, d_conv=4, expand=1)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = ConvMLP(channels, mlp_ratio * channels)

    def _mixer(self, seq: torch.Tensor) -> torch.Tensor:
        return self.mamba(self.norm1(seq))

    def _mlp(self, tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        return self.mlp(self.norm2(tokens), grid)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int, int],
                order: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, L, C) in raster order over ``grid``; ``order`` the Mamba's scan order."""
        recompute = self.checkpoint and torch.is_grad_enabled()
        seq = _gather(tokens, order)
        if recompute:
            seq = seq + torch.utils.checkpoint.checkpoint(self._mixer, seq, use_reentrant=False)
        else:
            seq = seq + self._mixer(seq)
        tokens = _gather(seq, None if order is None else invert(order))
        if recompute:
            return tokens + torch.utils.checkpoint.checkpoint(self._mlp, tokens, grid,
                                                              use_reentrant=False)
        return tokens + self._mlp(tokens, grid)


class SFMamba3D(nn.Module):
    """3D spatial-frequency Mamba block. x (B, T, C, H, W) -> (B, T, C, H, W).

    Global branch: tokens in raster order over (T, H, W), ``x + BiMamba(LN(x))``, then
    ``x + MLP(LN(x))`` (``ConvMLP``, hidden 4C). Wavelet branch: ``dwt3_pack``; the same two
    steps with the Mamba over ``subband_order(space_first)`` (raster order of the packed tensor
    when ``local_scan`` is False: the "no-sls" ablation) and the MLP on the packed grid;
    ``idwt3_unpack``. Output ``x + fuse(cat(global, wavelet))``, fuse = Linear(2C -> C).
    T, H, W even.
    """

    def __init__(self, channels: int, d_state: int = 1, local_scan: bool = True,
                 space_first: bool = True, checkpoint: bool = False):
        super().__init__()
        self.local_scan = local_scan
        self.space_first = space_first
        self.global_branch = _MambaMLP(channels, d_state, checkpoint=checkpoint)
        self.wavelet_branch = _MambaMLP(channels, d_state, checkpoint=checkpoint)
        self.fuse = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        grid = (t, h, w)
        tokens = x.permute(0, 1, 3, 4, 2).reshape(b, t * h * w, c)  # raster (T, H, W)
        glob = self.global_branch(tokens, grid)
        packed = dwt3_pack(x.transpose(1, 2))  # (B, C, T, H, W)
        order = subband_order(t, h, w, self.space_first) if self.local_scan else None
        wav = self.wavelet_branch(packed.flatten(2).transpose(1, 2), grid, order)
        wav = idwt3_unpack(wav.transpose(1, 2).reshape(b, c, t, h, w))
        wav = wav.permute(0, 2, 3, 4, 1).reshape(b, t * h * w, c)
        out = self.fuse(torch.cat([glob, wav], dim=-1)).view(b, t, h, w, c)
        return x + out.permute(0, 1, 4, 2, 3)
