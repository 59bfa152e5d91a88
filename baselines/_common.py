"""Shared machinery of the trained baselines: logo <-> frame-size mapping, per-frame application.

The image baselines (Balujanet, UDH, PUSNet, Safe-SD) hide a *full-size* secret image in a cover
image. A video is handled frame by frame, the whole logo in every frame:

* **Logo -> frame size.** The logo ``(3, h, w)`` becomes a secret image of the frame size
  ``(H, W)``, the secret of every frame, by one of two mappings (``logo_mapping``):
  ``"block"``: each logo pixel becomes a block of frame pixels (nearest neighbour);
  ``"bilinear"``: a bilinear resize (antialiased when shrinking).
* **Frame size -> logo.** Each frame's revealed image ``(3, H, W)`` is clamped to [0, 1] and
  brought back to ``(h, w)``: ``"block"``: the mean over each block (area); ``"bilinear"``: the
  same bilinear resize. The recovered logo is the mean over the T frames.

  ``"block"`` is the default: when the frame side is a multiple of the logo side its round trip
  is exact, so a perfect reveal gives back the logo. The bilinear round trip blurs: on the
  ``default`` profile (64x64 logos, 128x128 frames) it alone caps W-PSNR at 24-30 dB, so a
  method trained on it cannot pass the single-clip check whatever its network. Methods whose
  committed checkpoints were trained on it keep ``"bilinear"`` until they are retrained.

``PerFrameImageMethod`` implements the ``TrainableMethod`` contract once on top of two network
calls a subclass provides (``hide``: covers and secrets -> stego images; ``reveal``: stego ->
secrets). Training follows the papers: stego loss + weighted reveal loss, with the
differentiable attack between hiding and revealing.

Training budget: each method's ``train_defaults["steps"]`` is what trains in about 40 minutes
on 2 CPU cores at the ``default`` profile (forward + backward per step, data rendering aside:
balujanet 0.46 s, udh 1.7-2.2 s, pusnet 0.9 s, wengnet 1.05 s, safe-sd 1.0 s), with a peak
learning rate raised from the papers' 1e-4 to 3e-4 (UDH keeps its 1e-3; Balujanet 1e-3 over
1500 steps, its committed checkpoint) for that short budget; ``bench train --init`` continues
from a committed checkpoint when more budget is spent. That is far shorter than the papers'
training; each card records what was done.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.api import BenchError, Clip, Profile, TrainableMethod
from bench.core.video import check_video as _check_video

__all__ = ["CHECKPOINT_BUDGET_BYTES", "LOGO_MAPPINGS", "PerFrameImageMethod", "Pix2PixUNet",
           "VideoMethodBase", "average_over_frames", "check_inputs", "check_logos",
           "check_video", "frame_to_logo",
           "logo_to_frame", "parameter_bytes", "parameter_count", "quantise_ste",
           "random_crop_box"]

#: every ``default`` checkpoint must stay below this many bytes (float32 weights)
CHECKPOINT_BUDGET_BYTES = 10 * 1000 * 1000

LOGO_MAPPINGS = {
    "block": "logo (3, h, w) -> frame size (3, H, W) by nearest-neighbour blocks; revealed "
             "image -> (3, h, w) by the mean over each block (exact round trip when H, W are "
             "multiples of h, w)",
    "bilinear": "logo (3, h, w) -> frame size (3, H, W) by bilinear resize (antialiased when "
                "shrinking); revealed image -> (3, h, w) by the same resize",
}


# ------------------------------------------------------------------------------- mapping


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """images (N, C, h, w) -> (N, C, H, W), bilinear, antialiased; a copy if the size matches."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images.clone()
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=True)


def _check_mapping(mapping: str) -> None:
    if mapping not in LOGO_MAPPINGS:
        raise BenchError(f"unknown logo mapping {mapping!r} ({', '.join(LOGO_MAPPINGS)})")


def logo_to_frame(logos: torch.Tensor, frame_size: tuple[int, int],
                  mapping: str = "block") -> torch.Tensor:
    """logos (B, 3, h, w) in [0, 1] -> secret images (B, 3, H, W) in [0, 1] at frame size
    (reduced-precision inputs are mapped in float32)."""
    _check_mapping(mapping)
    logos = logos.float() if logos.dtype in (torch.bfloat16, torch.float16) else logos
    if mapping == "bilinear" or tuple(logos.shape[-2:]) == tuple(frame_size):
        return _resize(logos, frame_size).clamp(0.0, 1.0)
    return F.interpolate(logos, size=tuple(frame_size), mode="nearest-exact").clamp(0.0, 1.0)


def frame_to_logo(images: torch.Tensor, logo_size: tuple[int, int],
                  mapping: str = "block") -> torch.Tensor:
    """revealed images (N, 3, H, W) -> logos (N, 3, h, w), clamped to [0, 1] before and after
    (reduced-precision inputs are mapped in float32)."""
    _check_mapping(mapping)
    images = (images.float() if images.dtype in (torch.bfloat16, torch.float16)
              else images).clamp(0.0, 1.0)
    if mapping == "bilinear" or tuple(images.shape[-2:]) == tuple(logo_size):
        return _resize(images, logo_size).clamp(0.0, 1.0)
    return F.interpolate(images, size=tuple(logo_size), mode="area").clamp(0.0, 1.0)


def average_over_frames(per_frame: torch.Tensor) -> torch.Tensor:
    """per-frame recovered logos (B, T, 3, h, w) -> one logo per clip (B, 3, h, w)."""
    return per_frame.mean(dim=1)


def quantise_ste(images: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid in the forward pass; identity gradient (straight through).

    Not clamped: values outside [0, 1] pass (rounded), so an untrained network whose output
    starts outside the range still gives its decoder an informative input.
    """
    rounded = (images * 255).round() / 255
    return images + (rounded - images).detach()


def random_crop_box(height: int, width: int, crop: tuple[int, int],
                    generator: torch.Generator) -> tuple[int, int]:
    """Top-left corner ``(y, x)`` of a ``crop`` window, drawn uniformly from ``generator``."""
    ch, cw = crop
    y = int(torch.randint(height - ch + 1, (1,), generator=generator,
                          device=generator.device))
    x = int(torch.randint(width - cw + 1, (1,), generator=generator, device=generator.device))
    return y, x


# ------------------------------------------------------------------------------- checks


def check_video(frames: torch.Tensor, what: str = "frames") -> None:
    """Raise ``BenchError`` unless ``frames`` is a float tensor (B, T, 3, H, W)."""
    _check_video(frames, what, batched=True)


def check_logos(logos: torch.Tensor, batch: Optional[int] = None) -> None:
    """Raise ``BenchError`` unless ``logos`` is a float tensor (B, 3, h, w)."""
    if not isinstance(logos, torch.Tensor) or not logos.is_floating_point():
        raise BenchError(f"logos must be a float tensor (B, 3, h, w), got {type(logos)}")
    if logos.ndim != 4 or logos.shape[1] != 3:
        raise BenchError(f"logos must have shape (B, 3, h, w), got {tuple(logos.shape)}")
    if batch is not None and logos.shape[0] != batch:
        raise BenchError(f"{logos.shape[0]} logos for {batch} videos")


def check_inputs(frames: torch.Tensor, logos: torch.Tensor) -> None:
    check_video(frames)
    check_logos(logos, frames.shape[0])


def parameter_count(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def parameter_bytes(module: torch.nn.Module) -> int:
    """Bytes of the module's state_dict tensors (parameters and persistent buffers)."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a, b)


# ------------------------------------------------------------------------------ U-Net


class _Level(nn.Module):
    """One pix2pix U-Net level: down (LeakyReLU, conv 4x4 s2, BN), ..., up (ReLU, convT, BN)."""

    def __init__(self, outer: int, inner: int, in_channels: int, outermost: bool,
                 innermost: bool, norm: bool):
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        bias = not norm
        down: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2)]
        down.append(nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias))
        if norm and not (outermost or innermost):
            down.append(nn.BatchNorm2d(inner))
        self.down = nn.Sequential(*down)
        up_in = inner if innermost else 2 * inner
        up: list[nn.Module] = [nn.ReLU(),
                               nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1,
                                                  bias=bias or outermost)]
        if norm and not outermost:
            up.append(nn.BatchNorm2d(outer))
        self.up = nn.Sequential(*up)


class Pix2PixUNet(nn.Module):
    """The pix2pix U-Net generator (as in UDH's and the public WengNet's hiding networks).

    ``levels`` stride-2 4x4 convolutions with widths ngf, 2ngf, 4ngf, 8ngf, 8ngf, ... (capped at
    8ngf), LeakyReLU 0.2 down, ReLU up, BatchNorm (not on the outermost down and up), skip
    connections by concatenation, and ``output`` (``"tanh"`` / ``"sigmoid"`` / ``"none"``) at
    the end. Input (N, in_channels, H, W) -> (N, out_channels, H, W); a size that does not
    halve evenly is zero-padded back to the skip's size after each transposed convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, levels: int, ngf: int,
                 output: str = "tanh", norm: bool = True):
        super().__init__()
        if levels < 2:
            raise BenchError(f"a U-Net needs at least 2 levels, got {levels}")
        widths = [ngf * min(2 ** i, 8) for i in range(levels)]
        blocks = []
        for i in range(levels):
            outer = out_channels if i == 0 else widths[i - 1]
            in_ch = in_channels if i == 0 else widths[i - 1]
            blocks.append(_Level(outer, widths[i], in_ch, outermost=i == 0,
                                 innermost=i == levels - 1, norm=norm))
        self.levels = nn.ModuleList(blocks)
        activations = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "none": nn.Identity()}
        if output not in activations:
            raise BenchError(f"unknown U-Net output {output!r}")
        self.output = activations[output]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.levels:
            skips.append(x)
            x = level.down(x)
        for i in reversed(range(len(self.levels))):
            level, skip = self.levels[i], skips[i]
            if not level.innermost:
                x = torch.cat([skips[i + 1], x], dim=1)
            x = level.up(x)
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            if dh or dw:
                x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        return self.output(x)


# ------------------------------------------------------------------------------ methods


class VideoMethodBase(TrainableMethod):
    """Constructor, device handling and the logo/frame mapping common to every baseline.

    Subclasses implement ``build_network(profile) -> nn.Module``, ``hide_video`` and
    ``reveal_video``; ``embed`` / ``extract`` are written once here.
    """

    #: weight of the reveal loss against the stego loss (the papers' beta)
    reveal_weight: float = 0.75
    #: round the stego to 8 bits (straight-through) before the attack in training
    train_quantise: ClassVar[bool] = True
    #: how the logo becomes a frame-size secret and back (``LOGO_MAPPINGS``)
    logo_mapping: ClassVar[str] = "block"

    def __init__(self, profile: Profile, device: str = "cpu",
                 checkpoint: Optional[str] = "default"):
        if profile.height < 16 or profile.width < 16 or profile.logo_size < 1:
            raise BenchError(f"{self.name}: profile {profile.name!r} is too small "
                             f"({profile.height}x{profile.width}, logo {profile.logo_size})")
        _check_mapping(self.logo_mapping)
        self.profile = profile
        self.device = device
        self.frame_size = (int(profile.height), int(profile.width))
        self.logo_size = (int(profile.logo_size), int(profile.logo_size))
        self.net = self.build_network(profile).to(device)
        self.net.eval()
        self.checkpoint = None
        if checkpoint is not None:
            from bench.core.checkpoints import load_into

            load_into(self, checkpoint)

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def build_network(self, profile: Profile) -> torch.nn.Module:
        """The module holding every trainable parameter, sized for ``profile``."""

    @abc.abstractmethod
    def hide_video(self, frames: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        """covers (B, T, 3, H, W), secrets at frame size (B, 3, H, W) -> stego (B, T, 3, H, W).

        Not clamped; the caller clamps for ``embed``.
        """

    @abc.abstractmethod
    def reveal_video(self, frames: torch.Tensor) -> torch.Tensor:
        """stego (B, T, 3, H, W) -> revealed secret images (B, T, 3, H, W) at frame size."""

    # -- contract -------------------------------------------------------------------------
    def network(self) -> torch.nn.Module:
        return self.net

    def embed(self, frames: torch.Tensor, logos: torch.Tensor,
              clips: Optional[list[Clip]] = None) -> torch.Tensor:
        """frames (B, T, 3, H, W), logos (B, 3, h, w) -> watermarked (B, T, 3, H, W) in [0, 1].

        Runs without gradient, in the network's current mode (eval after construction).
        """
        check_inputs(frames, logos)
        out_device, out_dtype = frames.device, frames.dtype
        with torch.no_grad():
            x = frames.to(self.device, torch.float32)
            secrets = logo_to_frame(logos.to(self.device, torch.float32), tuple(x.shape[-2:]),
                                    self.logo_mapping)
            stego = self.hide_video(x, secrets).clamp(0.0, 1.0)
        return stego.to(out_device, out_dtype)

    def extract(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, 3, H, W) -> logos (B, 3, h, w) in [0, 1]: per-frame reveals averaged."""
        check_video(frames)
        out_device, out_dtype = frames.device, frames.dtype
        with torch.no_grad():
            x = frames.to(self.device, torch.float32)
            revealed = self.reveal_video(x)  # (B, T, 3, H, W)
            b, t = revealed.shape[:2]
            logos = frame_to_logo(revealed.flatten(0, 1), self.logo_size, self.logo_mapping)
            logos = average_over_frames(logos.unflatten(0, (b, t))).clamp(0.0, 1.0)
        return logos.to(out_device, out_dtype)

    def card(self) -> dict:
        return {"parameters": parameter_count(self.net),
                "checkpoint_bytes_float32": parameter_bytes(self.net),
                "logo_mapping": LOGO_MAPPINGS[self.logo_mapping],
                "extraction": "per-frame revealed images mapped to the logo size, averaged "
                              "over the T frames",
                "train_attacks": list(self.train_attacks),
                "train_quantise": ("stego rounded to 8 bits with a straight-through gradient "
                                   "before the attack (the evaluation stores 8-bit videos)"
                                   if self.train_quantise else "none"),
                "reveal_weight": self.reveal_weight}


class PerFrameImageMethod(VideoMethodBase):
    """An image-hiding network applied to every frame, the whole logo in each frame.

    Subclasses implement ``hide(covers (N, 3, H, W), secrets (N, 3, H, W)) -> stego`` and
    ``reveal(stego (N, 3, H, W)) -> secrets``. ``training_losses`` is the papers' objective:
    ``MSE(stego, cover) + reveal_weight * MSE(revealed, secret)`` at frame size, plus any
    ``auxiliary_losses``. With ``train_crop`` (a fraction of the frame side, for fully
    convolutional networks) training sees random crops of covers and frame-size secrets at the
    same place, which is equivalent for a network without downsampling and cheaper.
    """

    #: crop side as a fraction of the frame during training (None: whole frames)
    train_crop: ClassVar[Optional[float]] = None

    @abc.abstractmethod
    def hide(self, covers: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        """covers (N, 3, H, W), secrets (N, 3, H, W) -> stego (N, 3, H, W), unclamped."""

    @abc.abstractmethod
    def reveal(self, stego: torch.Tensor) -> torch.Tensor:
        """stego (N, 3, H, W) -> revealed secrets (N, 3, H, W)."""

    def hide_video(self, frames: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        per_frame = secrets[:, None].expand(b, t, *secrets.shape[1:])
        stego = self.hide(frames.flatten(0, 1), per_frame.flatten(0, 1))
        return stego.unflatten(0, (b, t))

    def reveal_video(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        return self.reveal(frames.flatten(0, 1)).unflatten(0, (b, t))

    # -- training -------------------------------------------------------------------------
    def stego_distortion(self, stego: torch.Tensor, covers: torch.Tensor) -> torch.Tensor:
        """The loss between stego and cover frames (MSE unless the paper says otherwise)."""
        return mse(stego, covers)

    def reveal_distortion(self, revealed: torch.Tensor, secrets: torch.Tensor) -> torch.Tensor:
        """The loss between revealed and true secrets (MSE unless the paper says otherwise)."""
        return mse(revealed, secrets)

    def auxiliary_losses(self, covers: torch.Tensor, secrets: torch.Tensor,
                         generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Extra weighted loss terms ``{name: scalar}`` added to ``loss`` (none by default).

        covers (N, 3, H, W) and secrets (N, 3, H, W): the (cropped) training images.
        """
        return {}

    def _training_inputs(self, frames: torch.Tensor, logos: torch.Tensor,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(covers (B, T, 3, h', w'), secrets (B, 3, h', w')), cropped when ``train_crop``."""
        check_inputs(frames, logos)
        frames = frames.to(self.device, torch.float32)
        height, width = frames.shape[-2:]
        secrets = logo_to_frame(logos.to(self.device, torch.float32), (height, width),
                                self.logo_mapping)
        if self.train_crop is not None:
            crop = (max(16, int(round(height * self.train_crop))),
                    max(16, int(round(width * self.train_crop))))
            if crop[0] < height or crop[1] < width:
                crop = (min(crop[0], height), min(crop[1], width))
                y, x = random_crop_box(height, width, crop, generator)
                frames = frames[..., y:y + crop[0], x:x + crop[1]]
                secrets = secrets[..., y:y + crop[0], x:x + crop[1]]
        return frames, secrets

    def training_losses(self, frames: torch.Tensor, logos: torch.Tensor, attack,
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One forward pass: hide, (8-bit STE), attack, reveal; losses at frame size.

        Returns ``loss``, ``video_mse`` (stego vs cover), ``logo_mse`` (revealed vs frame-size
        secret) and any auxiliary terms.
        """
        covers, secrets = self._training_inputs(frames, logos, generator)
        b, t = covers.shape[:2]
        stego = self.hide_video(covers, secrets)
        sent = quantise_ste(stego) if self.train_quantise else stego
        received = attack(sent, generator)
        revealed = self.reveal_video(received)
        targets = secrets[:, None].expand_as(revealed)
        video_mse = mse(stego, covers)
        logo_mse = mse(revealed, targets)
        loss = self.stego_distortion(stego, covers) + self.reveal_weight * \
            self.reveal_distortion(revealed, targets)
        extra = self.auxiliary_losses(covers.flatten(0, 1),
                                      targets.flatten(0, 1), generator)
        for value in extra.values():
            loss = loss + value
        return {"loss": loss, "video_mse": video_mse.detach(), "logo_mse": logo_mse.detach(),
                **{k: v.detach() for k, v in extra.items()}}

    def card(self) -> dict:
        out = super().card()
        out["application"] = "per frame: the whole logo (resized to the frame) in every frame"
        out["train_crop"] = (f"random crops of {self.train_crop:g} x the frame side "
                             "(covers and frame-size secrets cut at the same place)"
                             if self.train_crop else "whole frames")
        return out
