"""Balujanet (Baluja, NeurIPS 2017, "Hiding images in plain sight"), the small faithful version.

Three fully convolutional networks at full resolution, no downsampling:

* prep net on the secret: Conv 4x4 (3 -> 50), 4x4 (50 -> 50) twice, 2x2 (50 -> 30),
  2x2 (30 -> 7), ReLU between, tanh at the end; the 4x4 convs (padding 1) shrink the map by one
  pixel each, the 2x2 ones (padding 1) grow it by one, and one pixel of zero padding on the
  right and bottom restores H x W;
* hiding net on cat(cover, prepared secret) = 10 channels: 4x4 convs 10 -> 50 -> 50 -> 50 -> 50
  (paddings 2, 1, 2, 1), 2x2 (50 -> 30, padding 1), 2x2 (30 -> 3, no padding), tanh: the stego
  image directly (not a residual);
* reveal net: 4x4 convs 3 -> 100 -> 100 -> 50 (paddings 2, 2, 1), 2x2 (50 -> 3), tanh.

About 0.47M parameters at every profile. Loss ``MSE(stego, cover) + 0.75 MSE(revealed,
secret)``; Adam 1e-4, betas (0.5, 0.999). No noise layer (the original added Gaussian noise of
std 0.1 to the container in its TensorFlow design; the public PyTorch version does not).
Applied per frame with the whole logo in each frame (see ``baselines._common``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import PerFrameImageMethod
from bench.core.api import Profile


def _conv(cin: int, cout: int, kernel: int, padding: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=kernel, stride=1, padding=padding)


class BalujaNetwork(nn.Module):
    """prep + hiding + reveal nets; inputs and outputs (N, 3, H, W)."""

    def __init__(self):
        super().__init__()
        self.prep = nn.Sequential(
            _conv(3, 50, 4, 1), nn.ReLU(),
            _conv(50, 50, 4, 1), nn.ReLU(),
            _conv(50, 50, 4, 1), nn.ReLU(),
            _conv(50, 30, 2, 1), nn.ReLU(),
            _conv(30, 7, 2, 1), nn.Tanh())
        self.hiding = nn.Sequential(
            _conv(10, 50, 4, 2), nn.ReLU(),
            _conv(50, 50, 4, 1), nn.ReLU(),
            _conv(50, 50, 4, 2), nn.ReLU(),
            _conv(50, 50, 4, 1), nn.ReLU(),
            _conv(50, 30, 2, 1), nn.ReLU(),
            _conv(30, 3, 2, 0), nn.Tanh())
        self.reveal = nn.Sequential(
            _conv(3, 100, 4, 2), nn.ReLU(),
            _conv(100, 100, 4, 2), nn.ReLU(),
            _conv(100, 50, 4, 1), nn.ReLU(),
            _conv(50, 3, 2, 0), nn.Tanh())

    def hide(self, covers: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        prepared = F.pad(self.prep(secrets), (0, 1, 0, 1))
        return self.hiding(torch.cat([covers, prepared], dim=1))

    def forward(self, covers: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        return self.reveal(self.hide(covers, secrets))


class BalujaNet(PerFrameImageMethod):
    """Baluja's prep / hiding / reveal networks, applied to every frame."""

    name = "balujanet"
    version = "2"  # 2: the block logo mapping (baselines._common)
    description = "Baluja 2017 deep steganography (prep/hide/reveal CNNs), per frame"
    train_defaults = {"lr": 1e-3, "betas": (0.5, 0.999), "weight_decay": 1e-5,
                      "batch_size": 2, "frames": 2, "steps": 5000, "precision": "bf16"}
    train_attacks = ("identity",)
    #: fp32: bf16 was within 0.05 dB of fp32 up to the 13,660-step checkpoint; the 25,660-,
    #: 40,660- and 45,060-step ones miss it (mean |ΔW-PSNR| 0.055, 0.052 and 0.083 dB, first
    #: 4 videos; README)
    inference_precision = "fp32"
    train_crop = 0.5

    def build_network(self, profile: Profile) -> nn.Module:
        return BalujaNetwork()

    def hide(self, covers: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        return self.net.hide(covers, secrets)

    def reveal(self, stego: torch.Tensor) -> torch.Tensor:
        return self.net.reveal(stego)

    def card(self) -> dict:
        out = super().card()
        out.update({
            "architecture": "prep 3-50-50-50-30-7 (4x4, 2x2 convs), hiding 10-50-50-50-50-30-3, "
                            "reveal 3-100-100-50-3; ReLU, tanh outputs; direct stego",
            "widths": "published (same at every profile)",
            "noise_layers": "none (identity), as the public PyTorch version",
            "deviations": ["per frame, logo resized to the frame size",
                           "8-bit straight-through rounding of the stego in training",
                           "trained on random half-size crops (fully convolutional, no "
                           "downsampling: same receptive field, cheaper steps)"],
        })
        return out
