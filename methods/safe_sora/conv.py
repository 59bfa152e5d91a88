"""``FrameConv3d``: an ``nn.Conv3d`` that runs on the CPU as one 2D convolution over frames.

A Conv3d with kernel (kt, kh, kw), temporal stride 1 and temporal padding kt // 2 equals a 2D
convolution of every frame t with the kt frames t - kt//2 ... t + kt//2 stacked as channels
(zeros beyond the clip) and the kernel's temporal taps moved into its input channels:

    y[:, :, t] = conv2d(cat_k x[:, :, t + k - kt//2], W.permute(0, 2, 1, 3, 4).flatten(1, 2))

PyTorch's CPU Conv3d takes its slow im2col path for the few-channel dense layers of
Safe-Sora's embedder and extractor; the 2D form uses oneDNN. Forward + backward on one core,
fp32: (1, 4, 8, 128, 128) -> 7 channels 0.48 s -> 0.044 s; (1, 16, 8, 64, 64) -> 8 channels
0.41 s -> 0.039 s; (1, 24, 8, 32, 32) -> 24 channels 0.12 s -> 0.024 s. Outputs equal Conv3d's
to float rounding, and the parameters are Conv3d's own (same names and shapes), so checkpoints
load either way. Other devices, grouped kernels, temporal strides or dilations, and
non-zero padding modes run ``nn.Conv3d`` unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FrameConv3d", "conv3d_by_frames"]


def conv3d_by_frames(x: torch.Tensor, weight: torch.Tensor, bias, stride: tuple[int, int],
                     padding: tuple[int, int]) -> torch.Tensor:
    """Conv3d of x (B, C, T, H, W) with weight (O, C, kt, kh, kw), temporal stride 1, temporal
    zero padding kt // 2 (kt odd), spatial ``stride`` and ``padding`` -> (B, O, T, H', W')."""
    b, c, t, h, w = x.shape
    out_c, _, kt, kh, kw = weight.shape
    frames = x.transpose(1, 2)  # (B, T, C, H, W)
    if kt > 1:
        pad = kt // 2
        padded = F.pad(frames, (0, 0, 0, 0, 0, 0, pad, pad))
        frames = torch.cat([padded[:, k:k + t] for k in range(kt)], dim=2)  # (B, T, kt*C, H, W)
    frames = frames.reshape(b * t, kt * c, h, w)
    kernel = weight.permute(0, 2, 1, 3, 4).reshape(out_c, kt * c, kh, kw)
    y = F.conv2d(frames, kernel, bias, stride=stride, padding=padding)
    return y.view(b, t, out_c, *y.shape[-2:]).transpose(1, 2)


class FrameConv3d(nn.Conv3d):
    """``nn.Conv3d`` computed as ``conv3d_by_frames`` on the CPU where that is exact."""

    def _by_frames(self, x: torch.Tensor) -> bool:
        kt = self.kernel_size[0]
        return (x.device.type == "cpu" and x.dim() == 5 and self.groups == 1
                and self.stride[0] == 1 and self.dilation == (1, 1, 1)
                and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and kt % 2 == 1 and self.padding[0] == kt // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._by_frames(x):
            return super().forward(x)
        return conv3d_by_frames(x, self.weight, self.bias, self.stride[1:], self.padding[1:])
