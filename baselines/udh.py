"""UDH: Universal Deep Hiding (Zhang et al., NeurIPS 2020), the cover-agnostic hiding network.

* H-net: a pix2pix U-Net on the *secret only* (5 stride-2 levels, BatchNorm, LeakyReLU 0.2 down,
  ReLU up), tanh output scaled by 10/255: the container is ``cover + H(secret)``. The residual
  does not depend on the cover, so it is computed once per logo and added to every frame.
* R-net: six 3x3 convolutions nhf -> 2nhf -> 4nhf -> 2nhf -> nhf -> 3 with BatchNorm + ReLU,
  sigmoid output, applied to each frame.

Widths: the ``paper`` profile keeps the published ngf = nhf = 64 (about 17.4M parameters); every
other profile narrows them to ngf = 16, nhf = 32 (about 1.2M, a ~5 MB checkpoint), same
topology and losses. Loss ``MSE(container, cover) + 0.75 MSE(revealed, secret)``; Adam 1e-3,
beta1 0.5. No noise layer (UDH's main experiments train without one). Applied per frame with
the whole logo (resized to the frame) in every frame; see ``baselines._common``.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines._common import PerFrameImageMethod, Pix2PixUNet
from bench.core.api import Profile

RESIDUAL_SCALE = 10.0 / 255.0
LEVELS = 5


def udh_widths(profile: Profile) -> tuple[int, int]:
    """(ngf, nhf): published (64, 64) for the ``paper`` profile, (16, 32) otherwise."""
    return (64, 64) if profile.name == "paper" else (16, 32)


class RevealNet(nn.Module):
    """Six 3x3 convs 3 -> nhf -> 2nhf -> 4nhf -> 2nhf -> nhf -> 3, BN + ReLU, sigmoid."""

    def __init__(self, nhf: int):
        super().__init__()
        widths = [3, nhf, 2 * nhf, 4 * nhf, 2 * nhf, nhf]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        layers += [nn.Conv2d(nhf, 3, 3, padding=1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def forward(self, stego: torch.Tensor) -> torch.Tensor:
        return self.body(stego)


class UDHNetwork(nn.Module):
    """``hiding``: secret (N, 3, H, W) -> residual; ``reveal``: container -> secret."""

    def __init__(self, ngf: int, nhf: int):
        super().__init__()
        self.hiding = Pix2PixUNet(3, 3, LEVELS, ngf, output="tanh")
        self.reveal = RevealNet(nhf)

    def residual(self, secrets: torch.Tensor) -> torch.Tensor:
        return RESIDUAL_SCALE * self.hiding(secrets)


class UDH(PerFrameImageMethod):
    """Cover-agnostic U-Net residual on the logo, added to every frame; per-frame reveal."""

    name = "udh"
    version = "2"  # 2: the block logo mapping (baselines._common)
    description = "Universal Deep Hiding (cover-agnostic U-Net residual), per frame"
    train_defaults = {"lr": 1e-3, "betas": (0.5, 0.999), "weight_decay": 0.0,
                      "batch_size": 4, "frames": 2, "steps": 1500, "precision": "bf16"}
    train_attacks = ("identity",)

    def build_network(self, profile: Profile) -> nn.Module:
        ngf, nhf = udh_widths(profile)
        return UDHNetwork(ngf, nhf)

    def hide(self, covers: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        return covers + self.net.residual(secrets)

    def hide_video(self, frames: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        """The residual is computed once per logo and added to each of the T frames."""
        return frames + self.net.residual(secrets)[:, None]

    def reveal(self, stego: torch.Tensor) -> torch.Tensor:
        return self.net.reveal(stego)

    def card(self) -> dict:
        ngf, nhf = udh_widths(self.profile)
        out = super().card()
        out.update({
            "architecture": f"H-net pix2pix U-Net on the secret only ({LEVELS} levels, ngf "
                            f"{ngf}, BN), tanh x 10/255 residual added to the cover; R-net six "
                            f"3x3 convs (nhf {nhf}, BN, ReLU), sigmoid",
            "widths": {"ngf": ngf, "nhf": nhf,
                       "published": {"ngf": 64, "nhf": 64},
                       "narrowed": self.profile.name != "paper"},
            "noise_layers": "none (identity), as UDH's main hiding experiments",
            "deviations": ["per frame, logo resized to the frame size; the residual is the "
                           "same in every frame (UDH is cover-agnostic)",
                           "narrower widths except at the paper profile",
                           "8-bit straight-through rounding of the container in training"],
        })
        return out
