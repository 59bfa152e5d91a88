"""WengNet (Weng et al., ICMR 2019): video steganography with temporal residual modelling.

The secret is a *video* S_0..S_{T-1} (here the logo, resized to the frame size, in every frame).
Two hiding branches and two decoders:

* **frame branch** (key frames): a pix2pix U-Net on cat(cover_t, S_t) (6 channels, BatchNorm,
  sigmoid) outputs the stego frame directly; its reveal net (3x3 convs nhf -> 2nhf -> 4nhf ->
  2nhf -> nhf -> 3, BN + ReLU, sigmoid) recovers S_t;
* **residual branch** (other frames): the same architecture on cat(cover_t, S_t - S_{t-1}) with
  the residual mapped to [0, 1] as ``(r + 1) / 2``; its reveal net (tanh output) recovers the
  residual, and S_t = S_{t-1} + residual.

A simple threshold chooses the branch: frame 0 is always a key frame, and frame t is a key frame
when the mean absolute residual ``|S_t - S_{t-1}|`` exceeds ``KEY_THRESHOLD``. The receiver
needs the same key-frame flags; WengNet treats them as known side information. Here the secret
is always one *static* logo, so the flags are always ``[key, residual, residual, ...]`` and the
extractor uses exactly that schedule: **the residual branch carries zeros** in frames 1..T-1,
and only frame 0 carries the logo. It is implemented (and trained, on those zero residuals)
anyway, as the method prescribes. The recovered logo is the mean over t of the reconstructed
secret frames S_t, mapped back to the logo size.

Layer details of Weng's networks are not public; the hiding and reveal nets follow the public
image-only version (albblgb/Hiding-images-within-images: U-Net with 7 stride-2 levels, ngf 64,
BN, sigmoid, direct stego; reveal net nhf 64, BN, sigmoid). ``paper`` keeps ngf = nhf = 64
(about 2 x 42.6M parameters); every other profile narrows to ngf = 8, nhf = 32, and the number
of levels is ``min(7, log2(min(H, W)))``. Loss: ``MSE(stego, cover) + 0.75 MSE(decoded,
target)`` where the target is S_t on key frames and the residual on the others; Adam 1e-4,
betas (0.5, 0.999), weight decay 1e-5. No noise layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import (
    Pix2PixUNet,
    VideoMethodBase,
    check_inputs,
    logo_to_frame,
    mse,
    quantise_ste,
)
from bench.core.api import BenchError, Profile

#: frame t is a key frame when mean |S_t - S_{t-1}| exceeds this (values in [0, 1])
KEY_THRESHOLD = 0.05
MAX_LEVELS = 7


def wengnet_widths(profile: Profile) -> tuple[int, int]:
    """(ngf, nhf): published (64, 64) for the ``paper`` profile, (8, 32) otherwise."""
    return (64, 64) if profile.name == "paper" else (8, 32)


def wengnet_levels(profile: Profile) -> int:
    """U-Net levels: 7 as published, fewer when the frame is smaller than 128 pixels."""
    side = min(profile.height, profile.width)
    return max(2, min(MAX_LEVELS, int(math.floor(math.log2(side)))))


class RevealNet(nn.Module):
    """3x3 convs 3 -> nhf -> 2nhf -> 4nhf -> 2nhf -> nhf -> 3, BN + ReLU, then ``output``."""

    def __init__(self, nhf: int, output: nn.Module):
        super().__init__()
        widths = [3, nhf, 2 * nhf, 4 * nhf, 2 * nhf, nhf]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        layers += [nn.Conv2d(nhf, 3, 3, padding=1), output]
        self.body = nn.Sequential(*layers)

    def forward(self, stego: torch.Tensor) -> torch.Tensor:
        return self.body(stego)


class WengNetwork(nn.Module):
    """Frame and residual hiding U-Nets, frame and residual reveal nets."""

    def __init__(self, ngf: int, nhf: int, levels: int):
        super().__init__()
        self.hide_frame = Pix2PixUNet(6, 3, levels, ngf, output="sigmoid")
        self.hide_residual = Pix2PixUNet(6, 3, levels, ngf, output="sigmoid")
        self.reveal_frame = RevealNet(nhf, nn.Sigmoid())
        self.reveal_residual = RevealNet(nhf, nn.Tanh())


def key_frame_flags(secrets: torch.Tensor, threshold: float = KEY_THRESHOLD) -> torch.Tensor:
    """secret video (B, T, 3, H, W) -> bool (T,): frame 0, and frames whose mean |residual|
    exceeds ``threshold`` in any item of the batch, are key frames."""
    t = secrets.shape[1]
    flags = torch.zeros(t, dtype=torch.bool)
    flags[0] = True
    if t > 1:
        residual = (secrets[:, 1:] - secrets[:, :-1]).abs().mean(dim=(2, 3, 4))  # (B, T-1)
        flags[1:] = (residual > threshold).any(dim=0).cpu()
    return flags


class WengNet(VideoMethodBase):
    """Two-branch video hiding (frames / inter-frame residuals) with a threshold, two decoders."""

    name = "wengnet"
    version = "1"
    description = "Weng 2019 video steganography: frame and temporal-residual branches"
    train_defaults = {"lr": 3e-4, "betas": (0.5, 0.999), "weight_decay": 1e-5,
                      "batch_size": 4, "frames": 2, "steps": 1600, "precision": "bf16"}
    train_attacks = ("identity",)
    #: its committed checkpoint was trained on the bilinear mapping (see baselines._common)
    logo_mapping = "bilinear"

    def build_network(self, profile: Profile) -> nn.Module:
        ngf, nhf = wengnet_widths(profile)
        return WengNetwork(ngf, nhf, wengnet_levels(profile))

    # -- branches -------------------------------------------------------------------------
    def _hide_frames(self, covers: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        """covers, secrets (N, 3, H, W) -> stego (N, 3, H, W) by the frame branch."""
        return self.net.hide_frame(torch.cat([covers, secrets], dim=1))

    def _hide_residuals(self, covers: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        """covers (N, 3, H, W), residuals in [-1, 1] -> stego by the residual branch."""
        return self.net.hide_residual(torch.cat([covers, (residuals + 1) / 2], dim=1))

    def _secret_video(self, frames: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        """The secret video: the frame-size logo repeated over T, (B, T, 3, H, W)."""
        return secrets[:, None].expand(-1, frames.shape[1], -1, -1, -1)

    def _encode(self, frames: torch.Tensor, secret_video: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(stego (B, T, 3, H, W), decoder targets (B, T, 3, H, W), key flags (T,))."""
        flags = key_frame_flags(secret_video)
        residuals = torch.zeros_like(secret_video)
        residuals[:, 1:] = secret_video[:, 1:] - secret_video[:, :-1]
        stego = torch.empty_like(frames)
        targets = torch.empty_like(secret_video)
        key_idx = torch.nonzero(flags).flatten().tolist()
        res_idx = torch.nonzero(~flags).flatten().tolist()
        if key_idx:
            out = self._hide_frames(frames[:, key_idx].flatten(0, 1),
                                    secret_video[:, key_idx].flatten(0, 1))
            stego[:, key_idx] = out.unflatten(0, (frames.shape[0], len(key_idx))).to(stego.dtype)
            targets[:, key_idx] = secret_video[:, key_idx]
        if res_idx:
            out = self._hide_residuals(frames[:, res_idx].flatten(0, 1),
                                       residuals[:, res_idx].flatten(0, 1))
            stego[:, res_idx] = out.unflatten(0, (frames.shape[0], len(res_idx))).to(stego.dtype)
            targets[:, res_idx] = residuals[:, res_idx]
        return stego, targets, flags

    def _decode(self, frames: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
        """stego (B, T, 3, H, W) -> decoder outputs (B, T, 3, H, W): frames or residuals."""
        b = frames.shape[0]
        out = torch.empty_like(frames)
        key_idx = torch.nonzero(flags).flatten().tolist()
        res_idx = torch.nonzero(~flags).flatten().tolist()
        if key_idx:
            out[:, key_idx] = self.net.reveal_frame(
                frames[:, key_idx].flatten(0, 1)).unflatten(0, (b, len(key_idx))).to(out.dtype)
        if res_idx:
            out[:, res_idx] = self.net.reveal_residual(
                frames[:, res_idx].flatten(0, 1)).unflatten(0, (b, len(res_idx))).to(out.dtype)
        return out

    @staticmethod
    def _reconstruct(decoded: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
        """Decoder outputs -> secret frames: a key frame restarts, a residual adds on."""
        frames = []
        previous = None
        for t in range(decoded.shape[1]):
            if bool(flags[t]) or previous is None:
                current = decoded[:, t]
            else:
                current = previous + decoded[:, t]
            frames.append(current)
            previous = current
        return torch.stack(frames, dim=1)

    @staticmethod
    def static_schedule(t: int) -> torch.Tensor:
        """The key-frame flags of a static secret (the receiver's side information)."""
        flags = torch.zeros(t, dtype=torch.bool)
        flags[0] = True
        return flags

    # -- contract -------------------------------------------------------------------------
    def hide_video(self, frames: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        stego, _, _ = self._encode(frames, self._secret_video(frames, secrets))
        return stego

    def reveal_video(self, frames: torch.Tensor) -> torch.Tensor:
        flags = self.static_schedule(frames.shape[1])
        return self._reconstruct(self._decode(frames, flags), flags)

    def training_losses(self, frames: torch.Tensor, logos: torch.Tensor, attack,
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """MSE(stego, cover) + 0.75 MSE(decoded, target): target S_t on key frames, the
        residual S_t - S_{t-1} elsewhere; ``logo_mse`` on the reconstructed secret frames."""
        check_inputs(frames, logos)
        if frames.shape[1] < 2:
            raise BenchError("wengnet trains on clips of at least 2 frames (a key frame and a "
                             "residual frame)")
        covers = frames.to(self.device, torch.float32)
        secrets = logo_to_frame(logos.to(self.device, torch.float32), covers.shape[-2:],
                                self.logo_mapping)
        secret_video = self._secret_video(covers, secrets)
        stego, targets, flags = self._encode(covers, secret_video)
        sent = quantise_ste(stego) if self.train_quantise else stego
        received = attack(sent, generator)
        decoded = self._decode(received, flags)
        reconstructed = self._reconstruct(decoded, flags)
        video_mse = mse(stego, covers)
        loss = video_mse + self.reveal_weight * mse(decoded, targets)
        logo_mse = mse(reconstructed, secret_video)
        keys = torch.nonzero(flags).flatten().tolist()
        key_mse = F.mse_loss(decoded[:, keys], targets[:, keys])
        return {"loss": loss, "video_mse": video_mse.detach(), "logo_mse": logo_mse.detach(),
                "key_frame_logo_mse": key_mse.detach()}

    def card(self) -> dict:
        ngf, nhf = wengnet_widths(self.profile)
        out = super().card()
        out.update({
            "architecture": f"two pix2pix U-Nets on cat(cover, secret frame | residual) "
                            f"({wengnet_levels(self.profile)} levels, ngf {ngf}, BN, sigmoid, "
                            f"direct stego); reveal nets nhf {nhf} (frame: sigmoid, residual: "
                            "tanh)",
            "widths": {"ngf": ngf, "nhf": nhf, "levels": wengnet_levels(self.profile),
                       "published": {"ngf": 64, "nhf": 64, "levels": 7},
                       "narrowed": self.profile.name != "paper"},
            "key_threshold": KEY_THRESHOLD,
            "application": "video: frame 0 hides the logo (frame branch); frames 1..T-1 hide "
                           "the logo's inter-frame residual, which is zero for a static logo",
            "extraction": "frame decoder on frame 0, residual decoder on the others, "
                          "S_t = S_(t-1) + residual; mean over t of S_t, mapped to the logo "
                          "size",
            "noise_layers": "none (identity), as the paper",
            "deviations": ["layer details follow the public image-only WengNet (Weng's are "
                           "not public)",
                           "key-frame flags known to the receiver: with a static logo always "
                           "frame 0 only, so the residual branch carries zeros",
                           "narrower widths except at the paper profile; fewer U-Net levels "
                           "on frames under 128 pixels",
                           "8-bit straight-through rounding of the stego in training"],
        })
        return out
