"""Safe-Sora's extractor: 3D SFMamba blocks from the (attacked) video back to the watermark
canvas.

Conv3d(3 -> C, 1x3x3); SFMamba-3D at full size; Conv3d stride (1, 2, 2) + ReLU; SFMamba-3D at
1/2; Conv3d stride (1, 2, 2) + ReLU; SFMamba-3D at 1/4; Conv3d + ReLU; SFMamba-3D at 1/4;
Conv3d(C -> 4, 1); trilinear resize to (T, canvas height, canvas width); tanh. C = 24 as
published. Frames are downsampled in space only, so every frame keeps its own canvas.

``stem_stride`` 2 (the CPU-sized ``default`` profile) makes the stem a stride-2 convolution
and the second downsampling a stride-1 convolution, so the four blocks run at 1/2, 1/4, 1/4,
1/4 of the frame side: a full-size 3D SFMamba block at width 24 dominates a CPU training step
(about 9 s of 12 s at 8 x 128 x 128). Either way the last features are at 1/4 of the frame
side, at least as fine as the canvas (16 x 32 for 128 x 128 frames; 64 x 128 at 320 x 512).
The paper profile keeps stride 1 (blocks at 1, 1/2, 1/4, 1/4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.safe_sora.conv import FrameConv3d
from methods.safe_sora.embedder import from_conv3d, to_conv3d
from methods.safe_sora.sfmamba import SFMamba3D

__all__ = ["Extractor"]


class Extractor(nn.Module):
    """video (B, T, 3, H, W) in [0, 1] -> canvas (B, T, 4, ch, cw) in [-1, 1]; H, W divisible
    by 8."""

    def __init__(self, width: int = 24, local_scan: bool = True, space_first: bool = True,
                 stem_stride: int = 1):
        super().__init__()

        def block() -> SFMamba3D:
            return SFMamba3D(width, d_state=1, local_scan=local_scan, space_first=space_first)

        self.stem = FrameConv3d(3, width, (1, 3, 3), stride=(1, stem_stride, stem_stride),
                              padding=(0, 1, 1))
        self.blocks = nn.ModuleList([block() for _ in range(4)])
        second = 2 if stem_stride == 1 else 1  # the last features at 1/4 of the frame side
        self.convs = nn.ModuleList([
            FrameConv3d(width, width, 3, stride=(1, 2, 2), padding=1),
            FrameConv3d(width, width, 3, stride=(1, second, second), padding=1),
            FrameConv3d(width, width, 3, padding=1)])
        self.head = FrameConv3d(width, 4, 1)

    def forward(self, video: torch.Tensor, canvas_size: tuple[int, int]) -> torch.Tensor:
        t = video.shape[1]
        x = from_conv3d(self.stem(to_conv3d(video * 2 - 1)))
        x = self.blocks[0](x)
        for conv, block in zip(self.convs, self.blocks[1:], strict=True):
            x = block(from_conv3d(F.relu(conv(to_conv3d(x)))))
        canvas = self.head(to_conv3d(x))
        canvas = F.interpolate(canvas, size=(t, *canvas_size), mode="trilinear",
                               align_corners=False)
        return from_conv3d(torch.tanh(canvas))
